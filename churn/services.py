"""Churn training and scoring: transactions in the database → backtest → registry + score rows.

Registry layout (a choice, see the issue): the champion is registered as kind ``churn`` and
promoted; the model that lost the comparison is registered as kind ``churn_challenger`` with
status *ready*, its holdout metrics and its artifact (refit on the same latest window), for audit
and comparison. Keeping it out of the ``churn`` lane means the active ``churn`` version always
has a full population of ``ChurnScore`` rows behind the pages and the API, and nobody promotes a
model that lost the backtest over the champion by accident.

P(alive) from CLTV is **not** used as a feature: the ``CLTVScore`` rows hold P(alive) as of the
CLTV version's own cut-off, while the backtest needs it as of ``cutoff − H`` and ``cutoff − 2H``;
feeding the later value into the earlier windows would leak the future into training.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Any, Protocol

import numpy as np
import pandas as pd
from django.db.models import Max

from churn.explain import shap_explain, top_contributions
from churn.models import ChurnScore
from churn.pipeline import (
    ChurnConfig,
    ChurnError,
    ChurnModelBundle,
    ChurnTrainingResult,
    fit_bundle,
    group_performance,
    make_training_set,
    train_churn,
)
from rfm_portal.customers.features import FEATURE_COLUMNS, FEATURE_DOCS, build_features
from rfm_portal.customers.frames import FEATURE_COLUMNS as FRAME_COLUMNS
from rfm_portal.customers.frames import customer_frame, transaction_frame
from rfm_portal.customers.models import Transaction
from rfm_portal.mlops.model_cards import group_labels
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.scoring import ChunkScorer, ScoredChunk, chunk_summaries, rows_written, score_all_customers
from rfm_portal.mlops.services import (
    complete_model_version,
    fail_model_version,
    promote,
    start_model_version,
    write_artifact,
)

logger = logging.getLogger(__name__)

KIND = "churn"
CHALLENGER_KIND = "churn_challenger"
TOP_K = 3

__all__ = ["CHALLENGER_KIND", "KIND", "ChurnError", "score_features", "train_churn_model"]


class ProgressReporter(Protocol):
    def report(self, progress: int, message: str = "") -> None: ...


class _Silent:
    def report(self, progress: int, message: str = "") -> None:
        logger.debug("churn %s%% %s", progress, message)


# ---------------------------------------------------------------------------------------------
# reading the database into the frames build_features expects
# ---------------------------------------------------------------------------------------------


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def load_transactions(customer_pks: list[int] | None = None, before: Any = None) -> pd.DataFrame:
    """Transactions as the frame ``build_features`` expects, ``customer_id`` = the customer's pk.

    Read with COPY (``customers.frames.transaction_frame``): int32 ids, categorical invoice and
    category, no per-row Python objects.
    """
    return transaction_frame(FRAME_COLUMNS, customer_ids=customer_pks, before=before)


def load_customers(customer_pks: list[int] | None = None) -> pd.DataFrame:
    return customer_frame(customer_pks)


def default_cutoff() -> pd.Timestamp:
    """The day after the last transaction, 00:00 UTC (so every transaction counts)."""
    last = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
    if last is None:
        raise ChurnError("There are no transactions yet: import some before training a churn model.")
    return _utc(last).normalize() + pd.Timedelta(days=1)


def features_for_customers(customer_pks: list[int], as_of: Any) -> pd.DataFrame:
    """Features of these customers as of ``as_of`` through the same ``build_features`` as training.

    Indexed by customer pk; customers without a purchase before ``as_of`` are absent.
    """
    tx = load_transactions(customer_pks, before=as_of)
    return build_features(tx, _utc(as_of), load_customers(customer_pks))


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def model_card_text(result: ChurnTrainingResult, config: ChurnConfig, role: str, kind: str) -> str:
    """The model card users read on the Models page (plain text)."""
    H = config.horizon_days
    m = result.metrics[kind]
    features = ", ".join(f"{FEATURE_DOCS[f]['label']} ({f})" for f in result.bundle.features if f in FEATURE_DOCS)
    return "\n".join([
        f"Churn model ({kind}, {role}).",
        "",
        f"Definition of churn: a customer churns when they make no purchase within {H} days after the "
        "cut-off. The business is non-contractual, so nobody 'cancels'; silence for the horizon is the signal.",
        "",
        "Intended use: rank existing customers (at least one purchase) by the risk of going quiet, to choose "
        "whom a retention campaign should contact and what a campaign would need to change. Not for "
        "decisions about individuals beyond marketing contact, and not for customers with no purchase yet.",
        "",
        f"Training: time-based backtest. Trained on features at {result.train_window['feature_cutoff'][:10]} "
        f"with labels up to {result.train_window['label_end'][:10]}; evaluated out of time on features at "
        f"{result.holdout_window['feature_cutoff'][:10]} with labels up to {result.holdout_window['label_end'][:10]} "
        f"({result.holdout_window['customers']} customers, churn rate {result.holdout_window['churn_rate']:.0%}). "
        "The stored model is refit on the latest window and scores customers as of the cut-off.",
        "",
        f"Holdout: ROC-AUC {m['roc_auc']:.3f}, PR-AUC {m['pr_auc']:.3f}, Brier {m['brier']:.4f}.",
        f"Champion rule: the challenger wins only with ≥ {config.min_auc_gain} more ROC-AUC and a Brier score no "
        f"worse. Outcome: {result.reason}.",
        "",
        f"Features: {features}.",
        "",
        "Limitations: learns from purchase history only (no marketing contacts, web visits or service "
        "tickets); a customer whose usual gap between orders is longer than the horizon looks risky even "
        "when on schedule; probabilities are calibrated on the latest window and drift as buying seasons "
        "change — retrain regularly; counterfactuals are feature-space suggestions, not causal effects of a "
        "campaign (see Uplift for those). P(alive) from CLTV is not used (it is only known as of the CLTV "
        "cut-off, which would leak into the backtest windows).",
    ])


def _metrics_for(result: ChurnTrainingResult, kind: str, role: str, config: ChurnConfig,
                 groups: dict[str, Any] | None = None) -> dict[str, Any]:
    m = dict(result.metrics[kind])
    if groups is not None:  # per-group AUC and calibration on the backtest rows (see pipeline.group_performance)
        m["group_performance"] = group_performance(result.holdout_y, result.holdout_proba[kind], groups)
    m.update({
        "role": role, "model_kind": kind, "champion": result.champion, "champion_reason": result.reason,
        "champion_rule": (f"challenger wins iff ROC-AUC ≥ baseline + {config.min_auc_gain} and Brier ≤ baseline; "
                          "otherwise the logistic baseline stays"),
        "train_window": result.train_window, "holdout_window": result.holdout_window,
    })
    return m


def _register(
    kind: str, bundle: ChurnModelBundle, mv: ModelVersion, metrics: dict[str, Any], card: str,
) -> ModelVersion:
    bundle.metrics = {**bundle.metrics, "registry": {"kind": kind, "version": mv.version, "id": mv.pk}}
    path, _sha = write_artifact(kind, mv.version, bundle)
    return complete_model_version(mv, metrics, path, card)


def train_churn_model(
    *,
    cutoff: Any = None,
    horizon_days: int = 90,
    user: Any = None,
    reporter: ProgressReporter | None = None,
    config: ChurnConfig | None = None,
) -> list[ModelVersion]:
    """Backtest both models, register both, promote the champion and store its per-customer scores.

    Returns ``[champion (kind churn, active), challenger (kind churn_challenger, ready)]``. Scores are
    written in chunks shared with the Celery workers (``mlops.scoring``) before the promotion. Any
    error marks the versions started here failed, deletes their score rows and re-raises; the
    previously active version and its scores are untouched.
    """
    progress = reporter or _Silent()
    cfg = config or ChurnConfig(horizon_days=horizon_days)
    cut = _utc(cutoff) if cutoff is not None else None
    params: dict[str, Any] = {"horizon_days": cfg.horizon_days, "threshold": cfg.threshold,
                              "bands": ({"low": cfg.bands.low, "high": cfg.bands.high} if cfg.bands
                                        else "relative to the base rate (odds ×2 / ÷2)"),
                              "challenger": cfg.challenger, "min_auc_gain": cfg.min_auc_gain}
    mv = start_model_version(KIND, {**params, "role": "champion"}, user=user,
                             data_cutoff=cut.to_pydatetime() if cut is not None else None)
    started = [mv]
    try:
        progress.report(2, "Reading transactions")
        if cut is None:
            cut = default_cutoff()
            mv.data_cutoff = cut.to_pydatetime()
            mv.save(update_fields=["data_cutoff"])
        tx = load_transactions(before=cut)
        customers = load_customers()
        progress.report(15, f"Backtesting on {len(tx):,} transactions "
                            f"(cut-off {cut.date()}, horizon {cfg.horizon_days} d)")
        result = train_churn(tx, customers, cut, cfg)
        loser = cfg.challenger if result.champion == "logistic" else "logistic"
        groups = group_labels(result.holdout_ids, _utc(result.holdout_window["feature_cutoff"]).to_pydatetime())
        progress.report(45, f"Champion: {result.champion}. {result.reason}")

        # the losing model, refit on the same latest window, registered for comparison
        latest = make_training_set(tx, customers, cut, cfg.horizon_days)
        other = fit_bundle(loser, latest, cfg)  # type: ignore[arg-type]
        other.metrics = {"holdout": {k: v for k, v in result.metrics[loser].items()
                                     if k not in ("roc_curve", "pr_curve")}, "champion_reason": result.reason}
        cmv = start_model_version(CHALLENGER_KIND, {**params, "role": "challenger", "model_kind": loser}, user=user,
                                  data_cutoff=cut.to_pydatetime())
        started.append(cmv)
        _register(CHALLENGER_KIND, other, cmv, _metrics_for(result, loser, "challenger", cfg, groups),
                  model_card_text(result, cfg, "challenger — lost the backtest, not serving", loser))

        progress.report(55, "Scoring customers as of the cut-off")
        del tx, latest  # the chunks read their customers' features themselves: free the frames first
        metrics = _metrics_for(result, result.champion, "champion", cfg, groups)
        metrics["comparison"] = result.metrics  # both models, with curves, for the comparison charts
        metrics["challenger_version"] = {"id": cmv.pk, "version": cmv.version, "model_kind": loser}
        mv.params = {**mv.params, "model_kind": result.champion, "features": list(result.bundle.features)}
        mv.save(update_fields=["params"])
        _register(KIND, result.bundle, mv, metrics, model_card_text(result, cfg, "champion", result.champion))
        run = score_all_customers(mv, progress=progress, span=(55, 95))
        n = rows_written(run)
        # the page's counts, summed from the chunks (no second pass over every customer's features)
        bands = Counter()
        for summary in chunk_summaries(run):
            bands.update(summary.get("risk_bands", {}))
        metrics["scored_customers"] = n
        metrics["risk_bands"] = {b: int(bands.get(b, 0)) for b in ("low", "medium", "high")}
        ModelVersion.objects.filter(pk=mv.pk).update(metrics=metrics)
        promote(mv)
        progress.report(100, f"v{mv.version} active: {n:,} customers scored")
    except Exception as error:
        for started_mv in started:
            started_mv.refresh_from_db(fields=["status"])
            if started_mv.status in (ModelVersion.Status.TRAINING, ModelVersion.Status.READY):
                fail_model_version(started_mv, f"{type(error).__name__}: {error}")
        ChurnScore.objects.filter(model_version__in=started).delete()
        raise
    mv.refresh_from_db()
    cmv.refresh_from_db()
    return [mv, cmv]


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------


def score_features(bundle: ChurnModelBundle, X: pd.DataFrame, top_k: int = TOP_K) -> list[dict[str, Any]]:
    """Probability, band and top-``k`` SHAP contributions per row (vectorised over the batch)."""
    if not len(X):
        return []
    p = bundle.predict_proba(X)
    bands = bundle.bands.assign(p)
    expl = shap_explain(bundle, X)
    idx, vals = top_contributions(expl, top_k)
    out = []
    for i in range(len(X)):
        contribs = [
            {"feature": expl.feature_names[j], "label": FEATURE_DOCS.get(expl.feature_names[j], {}).get("label", ""),
             "value": float(expl.data[i, j]), "contribution": float(v)}
            for j, v in zip(idx[i], vals[i], strict=True)
        ]
        out.append({"probability": float(p[i]), "risk_band": str(bands[i]), "contributions": contribs})
    return out


def score_columns(bundle: ChurnModelBundle, X: pd.DataFrame, scored_at: dt.datetime) -> dict[str, list]:
    """``ChurnScore`` columns for featurised customers (``X`` indexed by customer pk), for ``copy_rows``."""
    scored = score_features(bundle, X)
    return {
        "customer_id": X.index.to_numpy(dtype=np.int64).tolist(),
        "probability": [s["probability"] for s in scored],
        "risk_band": [s["risk_band"] for s in scored],
        "top_contributions": [s["contributions"] for s in scored],
        "features": X[list(FEATURE_COLUMNS)].astype(float).to_dict(orient="records"),
        "scored_at": [scored_at] * len(X),
    }


def score_chunk(mv: ModelVersion, bundle: ChurnModelBundle, customer_pks: list[int],
                params: dict[str, Any]) -> ScoredChunk:
    """One chunk of batch scoring: these customers' features as of the version's cut-off, scored."""
    X = features_for_customers(customer_pks, mv.data_cutoff)
    columns = score_columns(bundle, X, dt.datetime.fromisoformat(params["scored_at"]))
    bands = pd.Series(columns["risk_band"], dtype=object).value_counts()
    return ScoredChunk(columns, {"risk_bands": {str(b): int(n) for b, n in bands.items()}})


SCORER = ChunkScorer(kind=KIND, score_model=ChurnScore, score=score_chunk)


def features_from_scores(scores: list[ChurnScore]) -> pd.DataFrame:
    """Stored features back into a frame (indexed by external id) for explanations."""
    frame = pd.DataFrame([s.features for s in scores], index=pd.Index([s.customer.external_id for s in scores],
                                                                        name="customer_id"))
    for name in FEATURE_COLUMNS:
        if name not in frame.columns:
            frame[name] = 0.0
    return frame


def as_of_datetime(value: dt.datetime | str | None) -> pd.Timestamp:
    """The feature cut-off for online scoring: the one given, else the latest data.

    Not "now": when imports lag (or a demo's data ended long ago) the silence after the
    last imported transaction is missing data, not customers staying away.
    """
    return _utc(value) if value is not None else default_cutoff()


# ---------------------------------------------------------------------------------------------
# explanations for the pages (the math is in churn.explain / churn.counterfactual / churn.charts)
# ---------------------------------------------------------------------------------------------


def global_explanation(bundle: ChurnModelBundle, scores: list[ChurnScore]) -> dict[str, Any]:
    """Global SHAP (importance bars + beeswarm) over a sample of stored customers' features."""
    from churn import charts
    from churn.explain import beeswarm_data, global_importance

    if not scores:
        return {}
    expl = shap_explain(bundle, features_from_scores(scores))
    importance = global_importance(expl)
    return {
        "importance": importance,
        "importance_figure": charts.importance_figure(
            importance, title=f"What drives churn risk ({len(scores):,} customers)"),
        "beeswarm_figure": charts.beeswarm_figure(beeswarm_data(expl)),
    }


def decision_plot(bundle: ChurnModelBundle, scores: list[ChurnScore]) -> dict[str, Any] | None:
    from churn import charts

    if not scores:
        return None
    expl = shap_explain(bundle, features_from_scores(scores))
    return charts.decision_figure([expl.row(i) for i in range(len(scores))])


def customer_explanation(bundle: ChurnModelBundle, score: ChurnScore) -> dict[str, Any]:
    """One customer: waterfall, decision plot and what orders would do to the risk ("k more orders worth about X
    in the next N days would bring risk from a to b"), every feature rebuilt from the transactions."""
    from churn import charts
    from churn.counterfactual import DEFAULT_ACTION_DAYS, actions_from_transactions

    X = features_from_scores([score])
    row = shap_explain(bundle, X).row(0)
    plan = None
    cutoff = score.model_version.data_cutoff
    if cutoff is not None:
        pk = score.customer_id
        try:
            plan = actions_from_transactions(
                bundle, load_transactions([pk], before=cutoff), cutoff, pk, load_customers([pk]),
                days=DEFAULT_ACTION_DAYS, p_alive=score.features.get("p_alive"))
        except ValueError:
            logger.warning("no purchase scenarios for customer %s: no purchase before the cut-off", pk)
    return {
        "waterfall_figure": charts.waterfall_figure(row),
        "decision_figure": charts.decision_figure([row]),
        "probability": float(bundle.predict_proba(X)[0]),
        "plan": plan.to_dict() if plan else None,
        "threshold": bundle.threshold,
    }
