"""CLTV training and scoring against the database (thin glue around ``cltv.pipeline``).

Cut-offs are *exclusive* dates: ``observation_end=1998-07-01`` uses every transaction before
1 July 1998 00:00 (UTC), i.e. up to and including 30 June — the pipeline's inclusive last day is
the day before. ``calibration_end`` likewise: the calibration period is every day before it and
the holdout period is [calibration_end, observation_end). Defaults: ``observation_end`` = the day
after the last transaction; ``calibration_end`` = the day that leaves the most recent 25% of
purchase days (``CLTVConfig.holdout_fraction``) in the holdout — a quantile of transaction times,
so a stray old transaction cannot drag the split back to a time with no customers.
"""

from __future__ import annotations

import dataclasses
import math
import traceback
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Max, Q, Sum
from django.db.models.functions import TruncDate

from cltv.pipeline import (
    SIMULATION_BLOCK,
    CLTVConfig,
    CLTVModelBundle,
    CLTVTraining,
    ModelFit,
    calibration_vs_holdout,
    cohort_table,
    expected_clv,
    fit_gamma_gamma,
    frequency_recency_matrices,
    holdout_group_performance,
    period_transactions,
    score_in_pk_blocks,
    train_cltv,
)
from cltv.summary import summary_from_transactions
from rfm_portal.customers.frames import copy_frame
from rfm_portal.customers.models import Transaction
from rfm_portal.dashboard.currency import currency_symbol
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.model_cards import group_labels
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.progress import JobReporter
from rfm_portal.mlops.scoring import ChunkScorer, ScoredChunk, chunk_summaries, score_all_customers

from .models import CLTVScore

KIND = "cltv"
DEFAULT_MARGIN = 1.0  # CLV in revenue terms unless the analyst states a margin


class CLTVTrainingError(RuntimeError):
    """Training could not run (e.g. no transactions before the cut-off)."""


# ---------------------------------------------------------------------------------------------
# reading transactions
# ---------------------------------------------------------------------------------------------


def _as_date(value: date | datetime | str | None) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value  # type: ignore[return-value]
    if isinstance(value, datetime):
        return value.date()
    return date.fromisoformat(str(value)[:10])


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _transaction_days_orm(before: date | None, customer_ids: list[int] | None) -> pd.DataFrame:
    """``transaction_days`` through the ORM, for databases without COPY (the embedded SQLite)."""
    qs = Transaction.objects.all()
    if before is not None:
        qs = qs.filter(invoiced_at__lt=_midnight(before))
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=customer_ids)
    rows = (
        qs.annotate(day=TruncDate("invoiced_at", tzinfo=UTC),
                    negative=ExpressionWrapper(Q(amount__lt=0), BooleanField()))
        .values("customer_id", "day", "negative")
        .annotate(total=Sum("amount"))
        .values_list("customer_id", "day", "total")
        .order_by()
    )
    frame = pd.DataFrame.from_records(list(rows.iterator(chunk_size=20_000)),
                                      columns=["customer_id", "invoiced_at", "amount"])
    frame["customer_id"] = frame["customer_id"].astype("int32")
    frame["amount"] = frame["amount"].astype(float)
    frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"])
    return frame


def transaction_days(before: date | None = None, customer_ids: list[int] | None = None) -> pd.DataFrame:
    """Transactions aggregated per (customer, calendar day, sign) in the database, read with COPY.

    Purchase rows (amount >= 0) and return rows (amount < 0) of a day stay separate rows, which
    is all the pipeline's "net" returns policy needs (it nets them per day itself). Columns:
    ``customer_id`` (Customer pk, int32), ``invoiced_at`` (datetime64, midnight of the UTC day),
    ``amount`` (float). Sums travel as exact ten-thousandths (see ``customers.frames``).
    """
    if connection.vendor != "postgresql":
        return _transaction_days_orm(before, customer_ids)
    where, params = [], []
    if before is not None:
        where.append("invoiced_at < %s")
        params.append(_midnight(before))
    if customer_ids is not None:
        where.append("customer_id = ANY(%s)")
        params.append([int(pk) for pk in customer_ids])
    sql = (
        "SELECT customer_id, (invoiced_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01', (sum(amount) * 10000)::int8"
        " FROM customers_transaction" + (" WHERE " + " AND ".join(where) if where else "")
        + " GROUP BY 1, 2, amount < 0"
    )
    frame = copy_frame(sql, params or None, {"customer_id": "int32", "invoiced_at": "int32", "amount": "int64"})
    frame["amount"] = frame["amount"].to_numpy() / 1e4
    frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"].to_numpy().astype("int64"), unit="D")
    return frame


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def _fit_summary(fit: ModelFit) -> dict[str, Any]:
    return {
        "model": fit.model,
        "label": fit.label,
        "params": fit.params,
        "standard_errors": fit.standard_errors,
        "penalizer": fit.penalizer,
        "log_likelihood": fit.log_likelihood,
        "n_customers": fit.n_customers,
        "degenerate": fit.degenerate,
        **({"extra": fit.extra} if fit.extra else {}),
    }


def _records(frame: pd.DataFrame, index_name: str) -> list[dict[str, Any]]:
    out = frame.reset_index().rename(columns={frame.index.name or "index": index_name})
    return out.replace({np.nan: None}).to_dict(orient="records")


def _validation_outputs(training: CLTVTraining) -> dict[str, Any]:
    """What the CLTV page shows to judge the model (computed once, at training)."""
    cal = training.cal_holdout
    chosen_cal_fit = training.comparison.fits[training.comparison.chosen]
    max_T = float(training.summary["T"].max())
    max_freq = int(min(max(training.summary["frequency"].quantile(0.99), 5), 30))
    matrices = frequency_recency_matrices(training.transaction_fit, max_freq, max_T, t=1.0, n_recency=40)
    return {
        "calibration_vs_holdout": _records(calibration_vs_holdout(chosen_cal_fit, cal), "frequency_cal"),
        "period_transactions": _records(
            period_transactions(chosen_cal_fit, cal["frequency_cal"].to_numpy(), cal["T_cal"].to_numpy()),
            "repeat_transactions",
        ),
        "matrices": matrices.to_dict(),
    }


def _model_card(training: CLTVTraining, metrics: dict[str, Any]) -> str:
    b = training.bundle
    gg = metrics["gamma_gamma_fit"]["extra"]
    return "\n".join(
        [
            f"# CLTV model ({metrics['chosen_label']} + Gamma-Gamma)",
            "",
            f"Data: {metrics['n_customers']:,} customers with a purchase before {metrics['observation_end_exclusive']}"
            f" (calibration period before {metrics['calibration_end_exclusive']}, holdout after).",
            f"Selection: lowest holdout {metrics['selection_metric'].upper()} among "
            + ", ".join(r["label"] for r in metrics["comparison"])
            + f"; chosen {metrics['chosen_label']}, refitted on the whole period"
            f" (penalizer {b.penalizers['transactions']}).",
            f"Holdout error of the chosen model: MAE {metrics['holdout_mae']:.3f}, RMSE {metrics['holdout_rmse']:.3f}, "
            f"aggregate {metrics['holdout_aggregate_error']:+.1%}.",
            f"Gamma-Gamma: frequency–spend correlation {gg['frequency_monetary_corr']:.3f} "
            + (
                "(independence plausible)."
                if gg["independence_ok"]
                else "(independence doubtful: treat spend with care)."
            ),
            f"CLV: {b.clv_horizon_days:g} days, {b.annual_discount_rate:.0%} annual discount, margin {b.margin:g}; "
            f"P10/P50/P90 from {b.n_draws} posterior-predictive draws per customer.",
            "Limits: customers are assumed to buy and drop out independently (no seasonality, no campaigns); "
            "returns are netted per day.",
        ]
    )


def _build_metrics(training: CLTVTraining, config: CLTVConfig, obs_excl: date, cal_excl: date) -> dict[str, Any]:
    cal = training.cal_holdout
    cal_gg = fit_gamma_gamma(
        cal["frequency_cal"].to_numpy(),
        cal["monetary_value_cal"].to_numpy(),
        penalizers=config.penalizers,
        max_abs_correlation=config.max_abs_correlation,
    )
    metrics = dict(training.bundle.metrics)
    metrics.pop("attempts", None)
    metrics.update(
        {
            "chosen": training.comparison.chosen,
            "chosen_label": training.transaction_fit.label,
            "observation_end_exclusive": obs_excl.isoformat(),
            "calibration_end_exclusive": cal_excl.isoformat(),
            # the fits on the calibration period: every candidate (BG/NBD included even when another
            # model is chosen) and Gamma-Gamma on the calibration repeaters — the published-fit checks
            "calibration_fits": {name: _fit_summary(fit) for name, fit in training.comparison.fits.items()},
            "calibration_gamma_gamma": _fit_summary(cal_gg),
            # the fits on the whole observation period, used for scoring
            "transaction_fit": _fit_summary(training.transaction_fit),
            "gamma_gamma_fit": _fit_summary(training.gamma_gamma_fit),
            "penalizers": training.bundle.penalizers,
            "validation": _validation_outputs(training),
        }
    )
    return registry_safe(metrics)


def registry_safe(obj: Any) -> Any:
    """JSON-safe copy for a JSONField: numpy scalars to Python, NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): registry_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [registry_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


SCORE_COLUMNS = ("p_alive", "expected_purchases_30d", "expected_purchases_90d", "expected_purchases_365d",
                 "expected_aov", "clv", "clv_p10", "clv_p50", "clv_p90")


def score_columns(summary: pd.DataFrame, scores: pd.DataFrame) -> dict[str, list]:
    """``CLTVScore`` columns (customer pk index) for ``copy_rows``."""
    return {
        "customer_id": summary.index.to_numpy(dtype=np.int64).tolist(),
        "first_purchase": pd.to_datetime(summary["first_purchase"]).dt.date.tolist(),
        "frequency": summary["frequency"].to_numpy().astype(np.int64).tolist(),
        "recency": summary["recency"].to_numpy(dtype=float).tolist(),
        "T": summary["T"].to_numpy(dtype=float).tolist(),
        "monetary": summary["monetary_value"].to_numpy(dtype=float).tolist(),
        **{name: scores[name].to_numpy(dtype=float).tolist() for name in SCORE_COLUMNS},
    }


def _simulation_block(mv: ModelVersion) -> int:
    return int(mv.params.get("simulation_block") or SIMULATION_BLOCK)


def score_chunk(mv: ModelVersion, bundle: CLTVModelBundle, customer_pks: list[int],
                params: dict[str, Any]) -> ScoredChunk:
    """One chunk of batch scoring: these customers' summaries as of the version's observation end, scored
    (simulation seeded per block of pks, so chunking does not change a row), plus their cohort sums."""
    obs_excl = date.fromisoformat(mv.params["observation_end"])
    frame = transaction_days(before=obs_excl, customer_ids=customer_pks)
    if frame.empty:
        return ScoredChunk({"customer_id": []})
    summary = summary_from_transactions(frame, obs_excl - timedelta(days=1), unit=bundle.unit,  # type: ignore[arg-type]
                                        returns=mv.params.get("returns", "net")).sort_index()
    result = score_in_pk_blocks(bundle, summary, block=_simulation_block(mv))
    return ScoredChunk(score_columns(summary, result.scores), {
        "cohort_customers": result.cohort_customers,
        "cohort_expected_clv": result.cohort_expected_clv,
        "cohort_draws": {k: v.tolist() for k, v in result.cohort_draws.items()},
    })


SCORER = ChunkScorer(kind=KIND, score_model=CLTVScore, score=score_chunk, pk_align=_simulation_block)


def _cohort_metrics(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The cohort band and total CLV from the chunks' cohort sums."""
    customers: dict[str, int] = {}
    expected: dict[str, float] = {}
    draws: dict[str, np.ndarray] = {}
    for summary in summaries:
        for name, n in summary.get("cohort_customers", {}).items():
            customers[name] = customers.get(name, 0) + int(n)
            expected[name] = expected.get(name, 0.0) + float(summary["cohort_expected_clv"][name])
            chunk_draws = np.asarray(summary["cohort_draws"][name], dtype=float)
            draws[name] = draws[name] + chunk_draws if name in draws else chunk_draws
    cohorts = cohort_table(customers, expected, draws)
    cohorts["cohort"] = cohorts["cohort"].dt.date.astype(str)
    return {
        "cohorts": registry_safe(cohorts.to_dict(orient="records")),
        "total_clv": float(sum(expected.values())),
    }


def train_cltv_model(
    *,
    observation_end: date | datetime | str | None = None,
    calibration_end: date | datetime | str | None = None,
    unit: str = "W",
    horizon_days: float = 365,
    annual_discount_rate: float = 0.10,
    margin: float = DEFAULT_MARGIN,
    n_draws: int = 200,
    models: tuple[str, ...] | None = None,
    penalizers: tuple[float, ...] | None = None,
    user=None,
    reporter: JobReporter | None = None,
) -> ModelVersion:
    """Train, score every customer and promote a new CLTV version; on any error the version is
    marked failed and the active version (and its scores) stay as they were.

    ``models`` / ``penalizers`` narrow the candidates compared (default: all), e.g. BG/NBD unpenalised
    to serve the published CDNOW fit."""

    def progress(pct: int, message: str) -> None:
        if reporter is not None:
            reporter.report(pct, message)

    obs_excl = _as_date(observation_end)
    cal_excl = _as_date(calibration_end)
    if obs_excl is None:
        last = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
        obs_excl = (last.date() + timedelta(days=1)) if last else date.today()
    config = CLTVConfig(
        unit=unit,  # type: ignore[arg-type]
        clv_horizon_days=float(horizon_days),
        annual_discount_rate=float(annual_discount_rate),
        margin=float(margin),
        n_draws=int(n_draws),
        **({"models": tuple(models)} if models else {}),
        **({"penalizers": tuple(float(p) for p in penalizers)} if penalizers else {}),
    )
    params = {
        "observation_end": obs_excl.isoformat(),
        "calibration_end": cal_excl.isoformat() if cal_excl else None,
        "simulation_block": int(settings.CLTV_SIMULATION_BLOCK),
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
    }
    mv = registry.start_model_version(KIND, params, user=user, data_cutoff=_midnight(obs_excl))
    try:
        progress(5, "Reading transactions")
        frame = transaction_days(before=obs_excl)
        if frame.empty:
            raise CLTVTrainingError(f"no transactions before {obs_excl}")
        progress(15, f"Fitting and comparing models on {frame['customer_id'].nunique():,} customers")
        training = train_cltv(
            frame,
            observation_end=obs_excl - timedelta(days=1),
            calibration_end=(cal_excl - timedelta(days=1)) if cal_excl else None,
            config=config,
        )
        if cal_excl is None:
            cal_excl = (training.calibration_end + pd.Timedelta(days=1)).date()
            mv.params = {**params, "calibration_end": cal_excl.isoformat()}
            mv.save(update_fields=["params"])
        progress(55, f"Chose {training.transaction_fit.label}; building validation outputs")
        metrics = _build_metrics(training, config, obs_excl, cal_excl)
        metrics["group_performance"] = registry_safe(holdout_group_performance(  # per country / RFM segment
            training.cal_holdout, training.comparison.fits[training.comparison.chosen],
            group_labels(training.cal_holdout.index, _midnight(cal_excl))))
        path, _sha = registry.write_artifact(KIND, mv.version, training.bundle)
        registry.complete_model_version(mv, metrics, path, _model_card(training, metrics))
        progress(70, f"Scoring {len(training.summary):,} customers (with P10/P50/P90 simulation)")
        run = score_all_customers(mv, progress=reporter, span=(70, 95))
        mv.metrics = {**metrics, **_cohort_metrics(chunk_summaries(run))}
        mv.save(update_fields=["metrics"])
        progress(95, "Promoting")
        registry.promote(mv)
    except Exception as exc:
        registry.fail_model_version(mv, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
        CLTVScore.objects.filter(model_version=mv).delete()
        raise
    progress(100, f"v{mv.version} active")
    mv.refresh_from_db()
    return mv


# ---------------------------------------------------------------------------------------------
# scoring with the active model
# ---------------------------------------------------------------------------------------------


def bundle_with_settings(
    bundle: CLTVModelBundle,
    *,
    horizon_days: float | None = None,
    annual_discount_rate: float | None = None,
    margin: float | None = None,
) -> CLTVModelBundle:
    """The bundle with other CLV settings (closed forms and simulation use them)."""
    changes: dict[str, Any] = {}
    if horizon_days is not None:
        changes["clv_horizon_days"] = float(horizon_days)
    if annual_discount_rate is not None:
        changes["annual_discount_rate"] = float(annual_discount_rate)
    if margin is not None:
        changes["margin"] = float(margin)
    return dataclasses.replace(bundle, **changes) if changes else bundle


def closed_form_clv(bundle: CLTVModelBundle, scores: pd.DataFrame) -> np.ndarray:
    """Closed-form CLV of stored score rows (frequency, recency, T, monetary) under the bundle's settings."""
    return expected_clv(
        bundle.model,
        bundle.params,
        bundle.gamma_gamma,
        scores["frequency"].to_numpy(dtype=float),
        scores["recency"].to_numpy(dtype=float),
        scores["T"].to_numpy(dtype=float),
        scores["monetary"].to_numpy(dtype=float),
        bundle.steps(),
        bundle.margin,
    )


def customer_summaries(bundle: CLTVModelBundle, customer_ids: list[int]) -> pd.DataFrame:
    """(frequency, recency, T, monetary_value) of customers from their transactions, in the bundle's unit.

    As of the later of the model's observation end and the customer's last transaction day.
    """
    frame = transaction_days(customer_ids=customer_ids)
    if frame.empty:
        return pd.DataFrame(columns=["frequency", "recency", "T", "monetary_value"])
    end = pd.Timestamp(bundle.observation_end) if bundle.observation_end else frame["invoiced_at"].max()
    end = max(end, frame["invoiced_at"].max())
    return summary_from_transactions(frame, end, unit=bundle.unit)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# the CLTV page
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class CLTVPage:
    """Everything the CLTV overview shows for the active version under the chosen settings."""

    figures: dict[str, dict[str, Any]]
    param_rows: list[dict[str, Any]]
    comparison: list[dict[str, Any]]
    top_customers: list[dict[str, Any]]
    cohorts: list[dict[str, Any]]
    totals: dict[str, float]
    trained_settings: bool
    partial_last_cohort: bool = False


def _param_rows(fit: dict[str, Any], label: str) -> list[dict[str, Any]]:
    rows = []
    for name, coef in fit["params"].items():
        se = fit["standard_errors"].get(name)
        rows.append(
            {
                "model": label,
                "param": name,
                "coef": coef,
                "se": se,
                "lower": coef - 1.96 * se if se is not None else None,
                "upper": coef + 1.96 * se if se is not None else None,
            }
        )
    return rows


def cltv_page(mv: ModelVersion, bundle: CLTVModelBundle, scores: pd.DataFrame) -> CLTVPage:
    """Figures and tables of the CLTV overview; CLV closed form under ``bundle``'s settings.

    The P10/P50/P90 of customers and cohorts are the stored ones, i.e. for the trained settings.
    """
    from cltv import charts
    from cltv.pipeline import FrequencyRecencyMatrices

    m = mv.metrics
    trained = (
        bundle.clv_horizon_days == mv.params.get("clv_horizon_days")
        and bundle.annual_discount_rate == mv.params.get("annual_discount_rate")
        and bundle.margin == mv.params.get("margin")
    )
    scores = scores.copy()
    scores["clv_now"] = scores["clv"] if trained else closed_form_clv(bundle, scores)
    val = m["validation"]
    cvh = pd.DataFrame(val["calibration_vs_holdout"]).set_index("frequency_cal")
    pt = pd.DataFrame(val["period_transactions"]).set_index("repeat_transactions")
    mat = val["matrices"]
    matrices = FrequencyRecencyMatrices(
        frequency=np.asarray(mat["frequency"], dtype=float),
        recency=np.asarray(mat["recency"], dtype=float),
        T=float(mat["T"]),
        t=float(mat["t"]),
        expected_purchases=np.asarray(mat["expected_purchases"], dtype=float),
        p_alive=np.asarray(mat["p_alive"], dtype=float),
    )
    comparison = pd.DataFrame(m["comparison"])
    if "error" in comparison:
        comparison["error"] = comparison["error"].fillna("")
    scores["cohort"] = pd.to_datetime(scores["first_purchase"]).dt.to_period("M").dt.to_timestamp()
    cohort_now = scores.groupby("cohort").agg(customers=("clv_now", "size"), expected_clv_now=("clv_now", "sum"))
    stored = pd.DataFrame(m.get("cohorts", []))
    if not stored.empty:
        stored["cohort"] = pd.to_datetime(stored["cohort"])
        cohort_table = stored.set_index("cohort").join(cohort_now[["expected_clv_now"]], how="left").reset_index()
    else:
        cohort_table = cohort_now.reset_index().assign(p10=np.nan, p50=np.nan, p90=np.nan, expected_clv=np.nan)
    band = cohort_table.assign(expected_clv=cohort_table["expected_clv_now"])
    unit_label = "weeks" if bundle.unit == "W" else "days"
    currency = currency_symbol()
    # Data end inside a month (the cut-off is not the 1st): the last cohort has only part of its customers.
    obs_end = m.get("observation_end_exclusive")
    partial_last = bool(obs_end) and pd.Timestamp(obs_end).day != 1
    figures = {
        "comparison": charts.model_comparison_figure(comparison, m.get("selection_metric", "rmse")),
        "calibration": charts.calibration_vs_holdout_figure(cvh),
        "period": charts.period_transactions_figure(pt),
        "expected": charts.expected_purchases_heatmap(matrices),
        "palive": charts.p_alive_heatmap(matrices),
        "distribution": charts.clv_distribution_figure(scores["clv_now"].to_numpy(), currency=currency),
        "cohorts": charts.cohort_band_figure(band, currency=currency, partial_last=partial_last),
    }
    figures["expected"]["layout"]["title"] = charts.wrapped_title(
        f"Expected purchases in the next {matrices.t:g} {unit_label[:-1]} (customer age {matrices.T:.0f} {unit_label})"
    )
    top = scores.sort_values("clv_now", ascending=False).head(25)
    params = _param_rows(m["transaction_fit"], m["transaction_fit"]["label"]) + _param_rows(
        m["gamma_gamma_fit"], "Gamma-Gamma"
    )
    values = scores["clv_now"].to_numpy(dtype=float)
    totals = {
        "customers": len(scores),
        "total_clv": float(values.sum()),
        "median_clv": float(np.median(values)) if len(values) else 0.0,
        "p10": float(np.quantile(values, 0.1)) if len(values) else 0.0,
        "p90": float(np.quantile(values, 0.9)) if len(values) else 0.0,
        "mean_p_alive": float(scores["p_alive"].mean()) if len(values) else 0.0,
    }
    return CLTVPage(
        partial_last_cohort=partial_last,
        figures=figures,
        param_rows=registry_safe(params),
        comparison=registry_safe(comparison.to_dict(orient="records")),
        top_customers=registry_safe(top.to_dict(orient="records")),
        cohorts=registry_safe(
            cohort_table.assign(cohort=cohort_table["cohort"].dt.strftime("%Y-%m")).to_dict(orient="records")
        ),
        totals=totals,
        trained_settings=bool(trained),
    )


# ---------------------------------------------------------------------------------------------
# the CSV export: what the page shows, under the page's settings
# ---------------------------------------------------------------------------------------------


def is_trained_settings(mv: ModelVersion, bundle: CLTVModelBundle) -> bool:
    return (
        bundle.clv_horizon_days == mv.params.get("clv_horizon_days")
        and bundle.annual_discount_rate == mv.params.get("annual_discount_rate")
        and bundle.margin == mv.params.get("margin")
    )


def scores_export(mv: ModelVersion, bundle: CLTVModelBundle, scores: pd.DataFrame) -> pd.DataFrame:
    """The export table under ``bundle``'s settings, highest CLV first, rounded to what is meaningful.

    CLV and expected purchases follow the horizon, discount rate and margin; the stored P10/P50/P90
    come from the simulation at the trained settings, so they are only included at those settings.
    Money in the portal's currency (column names say which), cents; probabilities 4 decimals,
    purchases 3, history in the model's unit 2.
    """
    from rfm_portal.dashboard.currency import money_column

    horizon = round(bundle.clv_horizon_days)
    x, tx, T = (scores[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    out = pd.DataFrame(
        {
            "customer_id": scores["external_id"].astype(str),
            "first_purchase": pd.to_datetime(scores["first_purchase"]).dt.strftime("%Y-%m-%d"),
            "frequency": scores["frequency"].astype(int),
            f"recency_{'weeks' if bundle.unit == 'W' else 'days'}": scores["recency"].astype(float).round(2),
            f"age_{'weeks' if bundle.unit == 'W' else 'days'}": scores["T"].astype(float).round(2),
            money_column("mean_repeat_order"): scores["monetary"].astype(float).round(2),
            "p_alive": scores["p_alive"].astype(float).round(4),
            f"expected_purchases_{horizon}d": np.round(bundle.expected_purchases(float(horizon), x, tx, T), 3),
            money_column("expected_order_value"): scores["expected_aov"].astype(float).round(2),
            money_column(f"clv_{horizon}d"): np.round(closed_form_clv(bundle, scores), 2),
        }
    )
    if is_trained_settings(mv, bundle):
        for q in ("p10", "p50", "p90"):
            out[money_column(f"clv_{q}")] = scores[f"clv_{q}"].astype(float).round(2)
    out["horizon_days"] = horizon
    out["annual_discount_rate"] = bundle.annual_discount_rate
    out["margin"] = bundle.margin
    out["model_version"] = mv.version
    return out.sort_values(money_column(f"clv_{horizon}d"), ascending=False, kind="stable")
