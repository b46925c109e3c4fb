"""Uplift training and scoring: campaign history + transactions in the database → registry + score rows.

Registry layout (as churn): the learner with the higher held-out Qini is registered as kind
``uplift`` and promoted, with one ``UpliftScore`` per customer; the other learner is registered as
kind ``uplift_challenger`` with status *ready* (its metrics and artifact kept for comparison), so
the active ``uplift`` version always has a full population of scores behind the pages and API.

Data: one campaign (``CampaignHistory`` rows of one name). Each campaign customer's features are
built by the one feature definition as of *their own* ``sent_at`` (transactions strictly before
it): nothing from the outcome window leaks in. Customers without a purchase before ``sent_at``
are left out and counted. The served model then scores every customer as of the data cut-off (the
day after the last transaction), i.e. "what would contact change now".

Checks (arm sizes, share, balance) run before any model version is created: a one-armed or tiny
campaign is refused with a clear message and leaves the registry untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict
from typing import Any, Protocol

import numpy as np
import pandas as pd
from django.conf import settings
from django.db.models import Count, FloatField, Max, Q
from django.db.models.functions import Cast

from rfm_portal.customers.features import FEATURE_COLUMNS, build_features, build_features_at
from rfm_portal.customers.frames import FEATURE_COLUMNS as FRAME_COLUMNS
from rfm_portal.customers.frames import customer_frame, transaction_frame
from rfm_portal.customers.models import CampaignHistory, Transaction
from rfm_portal.mlops.model_cards import group_labels
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.scoring import ChunkScorer, ScoredChunk, rows_written, score_all_customers
from rfm_portal.mlops.services import (
    NoActiveModel,
    complete_model_version,
    fail_model_version,
    load_active,
    promote,
    start_model_version,
    write_artifact,
)
from uplift.models import UpliftScore
from uplift.pipeline import (
    LEARNER_LABELS,
    NORMALISATION,
    ProfitInputs,
    UpliftConfig,
    UpliftError,
    UpliftModel,
    UpliftTrainingResult,
    group_performance,
    summarise_timings,
    train_uplift,
)

logger = logging.getLogger(__name__)

KIND = "uplift"
CHALLENGER_KIND = "uplift_challenger"

__all__ = ["CHALLENGER_KIND", "KIND", "UpliftError", "train_uplift_model"]


class ProgressReporter(Protocol):
    def report(self, progress: int, message: str = "") -> None: ...


class _Silent:
    def report(self, progress: int, message: str = "") -> None:
        logger.debug("uplift %s%% %s", progress, message)


def default_profit_inputs() -> ProfitInputs:
    return ProfitInputs(contact_cost=settings.UPLIFT_CONTACT_COST, incentive_cost=settings.UPLIFT_INCENTIVE_COST,
                        margin=settings.UPLIFT_MARGIN).validated()


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


# ---------------------------------------------------------------------------------------------
# reading the database
# ---------------------------------------------------------------------------------------------


def campaigns_with_both_arms() -> list[dict[str, Any]]:
    """Every campaign name with its arm sizes and last send time, latest first."""
    rows = (CampaignHistory.objects.values("campaign")
            .annotate(n=Count("id"), n_treated=Count("id", filter=Q(treated=True)),
                      n_control=Count("id", filter=Q(treated=False)), sent=Max("sent_at"))
            .order_by("-sent", "campaign"))
    return [r for r in rows if r["n_treated"] and r["n_control"]]


def default_campaign() -> str:
    rows = campaigns_with_both_arms()
    if not rows:
        if CampaignHistory.objects.exists():
            raise UpliftError("No campaign has both a contacted and a held-back (control) group, so no effect of "
                              "contact can be measured. Import a campaign with a control group.")
        raise UpliftError("There is no campaign history yet: import one (customers contacted or held back, "
                          "whether they bought, revenue, send time) before training an uplift model.")
    return rows[0]["campaign"]


def load_transactions(customer_pks: list[int] | None = None, before: Any = None) -> pd.DataFrame:
    """Transactions as ``build_features`` expects them (``customer_id`` = customer pk), read with COPY."""
    return transaction_frame(FRAME_COLUMNS, customer_ids=customer_pks, before=before)


def load_customers(customer_pks: list[int] | None = None) -> pd.DataFrame:
    return customer_frame(customer_pks)


def default_cutoff() -> pd.Timestamp:
    """The day after the last transaction, 00:00 UTC (so every transaction counts)."""
    last = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
    if last is None:
        raise UpliftError("There are no transactions yet: import some before scoring uplift.")
    return _utc(last).normalize() + pd.Timedelta(days=1)


def as_of_datetime(value: Any) -> pd.Timestamp:
    return _utc(value) if value is not None else default_cutoff()


def features_for_customers(customer_pks: list[int], as_of: Any) -> pd.DataFrame:
    """Features as of ``as_of`` (indexed by pk); customers without a purchase before it are absent."""
    tx = load_transactions(customer_pks, before=as_of)
    return build_features(tx, _utc(as_of), load_customers(customer_pks))


def campaign_training_frame(campaign: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Features as of each customer's ``sent_at`` joined to treated/converted/revenue (indexed by pk)."""
    rows = list(CampaignHistory.objects.filter(campaign=campaign).annotate(rev=Cast("revenue", FloatField()))
                .values_list("customer_id", "treated", "converted", "rev", "sent_at"))
    if not rows:
        raise UpliftError(f"There is no campaign named {campaign!r}.")
    pks, treated, converted, revenue, sent = zip(*rows, strict=True)
    outcome = pd.DataFrame({"treated": np.asarray(treated, bool), "converted": np.asarray(converted, float),
                            "revenue": np.asarray(revenue, float)}, index=pd.Index(np.asarray(pks, np.int64)))
    cutoffs = pd.Series(pd.to_datetime(list(sent), utc=True), index=outcome.index)
    tx = load_transactions(list(outcome.index), before=cutoffs.max())
    X = build_features_at(tx, cutoffs, load_customers(list(outcome.index)))
    frame = X.join(outcome, how="inner")
    info = {"campaign": campaign, "campaign_customers": len(outcome), "used_customers": len(frame),
            "excluded_no_history": int(len(outcome) - len(frame)),
            "sent_from": cutoffs.min().isoformat(), "sent_to": cutoffs.max().isoformat()}
    return frame, info


def capped_training_frame(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most about ``max_rows`` campaign customers: a seeded sample with every (arm, converted) stratum
    in its original proportion, in the original order. ``max_rows`` 0 or a smaller frame: the frame."""
    if not max_rows or len(frame) <= max_rows:
        return frame
    strata = frame["treated"].astype(int) * 2 + (frame["converted"] > 0).astype(int)
    keep = frame.groupby(strata.to_numpy(), sort=True).sample(frac=max_rows / len(frame), random_state=seed).index
    return frame.loc[frame.index.isin(keep)]


def _churn_risk_rule() -> tuple[Any, str]:
    """The naive "target the highest churn risk" score: the active churn model, else the overdue ratio."""
    try:
        bundle = load_active("churn")
    except NoActiveModel:
        bundle = None
    except Exception:  # an unreadable churn artifact must not stop uplift training: fall back to the proxy
        logger.warning("active churn model unreadable; the churn-risk rule uses the overdue ratio", exc_info=True)
        bundle = None
    if bundle is not None and all(f in FEATURE_COLUMNS for f in getattr(bundle, "features", [])):
        return (lambda X: bundle.predict_proba(X)), "churn risk from the active churn model"
    return None, "overdue ratio (days since last order ÷ usual gap between orders), no churn model active"


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------


def model_card_text(result: UpliftTrainingResult, info: dict[str, Any], learner: str, role: str) -> str:
    ev = result.evaluation[learner]
    c = result.checks
    return "\n".join([
        f"Uplift model ({LEARNER_LABELS[learner]}, {role}).",
        "",
        f"What it estimates: the effect of contacting a customer on the chance they buy within the campaign's "
        f"outcome window, with a 95 % interval, and the effect on revenue in that window. Learned from campaign "
        f"'{info['campaign']}' ({c['n_treated']:,} contacted, {c['n_control']:,} held back; "
        f"{info['excluded_no_history']:,} customers without a purchase before the send were left out). Features "
        "are built as of each customer's send time from earlier transactions only.",
        "",
        "Intended use: choose whom to contact (persuadables), whom to leave alone (sleeping dogs), and how many "
        "to contact for the most profit. The campaign must have been randomised; the effect is that of this "
        "kind of offer and channel, and drifts as offers change.",
        "",
        f"Held-out evaluation ({c['n_holdout']:,} customers, split stratified by arm and outcome): Qini "
        f"coefficient {ev['qini']:.4f}, AUUC {ev['auuc']:.4f}, observed uplift in the top 10 % "
        f"{ev['uplift_at']['10']:+.1%}. {NORMALISATION}",
        f"Champion rule: the learner with the higher held-out Qini coefficient serves. Outcome: {result.reason}.",
        "Both learners were fitted on the training part only; the served model is that fit (not refit).",
    ])


def _metrics(result: UpliftTrainingResult, info: dict[str, Any], learner: str, role: str,
             profit: ProfitInputs, churn_rule: str, holdout: pd.DataFrame | None = None) -> dict[str, Any]:
    ev = result.evaluation[learner]
    per_group = {}
    if holdout is not None:  # Qini per country / RFM segment (as of the first send) on the held-out split
        groups = group_labels(holdout.index, pd.Timestamp(info["sent_from"]).to_pydatetime())
        per_group["group_performance"] = group_performance(
            holdout["converted"].to_numpy(), holdout["treated"].to_numpy(), holdout[f"{learner}_uplift"].to_numpy(),
            groups)
    return {**per_group,
        "role": role, "learner": learner, "champion": result.champion, "champion_reason": result.reason,
        "champion_rule": "the learner with the higher held-out Qini coefficient serves; the other is kept ready",
        "qini": ev["qini"], "auuc": ev["auuc"], "uplift_at": ev["uplift_at"], "groups_holdout": ev["groups"],
        "campaign": info, "checks": result.checks, "normalisation": NORMALISATION, "churn_rule": churn_rule,
        "profit_defaults": asdict(profit), "failures": result.failures, "timings": summarise_timings(result.timings),
    }


def _holdout_frame(result: UpliftTrainingResult, frame: pd.DataFrame, churn_score: Any) -> pd.DataFrame:
    """The held-out customers' outcomes + the scores that profit curves re-rank under new inputs."""
    ho = frame.loc[result.holdout_index]
    X = ho[list(FEATURE_COLUMNS)]
    out = pd.DataFrame({"treated": ho["treated"].to_numpy(bool), "converted": ho["converted"].to_numpy(float),
                        "revenue": ho["revenue"].to_numpy(float),
                        "churn_risk": np.asarray(churn_score(X) if churn_score else ho["gap_ratio"], dtype=float)},
                       index=ho.index)
    for kind, model in result.models.items():
        s = model.score(X)
        out[f"{kind}_uplift"] = s["uplift"].to_numpy(float)
        out[f"{kind}_baseline"] = s["baseline"].to_numpy(float)
        out[f"{kind}_revenue_uplift"] = s["revenue_uplift"].to_numpy(float)
    return out


def train_uplift_model(
    *,
    campaign: str | None = None,
    user: Any = None,
    reporter: ProgressReporter | None = None,
    config: UpliftConfig | None = None,
) -> list[ModelVersion]:
    """Train both learners on one campaign, register both, promote the champion and score every customer.

    Returns ``[champion (kind uplift, active), challenger (kind uplift_challenger, ready)]`` — the
    challenger is absent when only one learner could be fitted. Refusals (no campaign, one arm,
    tiny arms) raise :class:`UpliftError` before any version exists; any later error marks the
    versions started here failed and re-raises, leaving the active version and its scores untouched.
    """
    progress = reporter or _Silent()
    cfg = config or UpliftConfig()
    profit = default_profit_inputs()
    progress.report(2, "Reading the campaign")
    name = campaign or default_campaign()
    frame, info = campaign_training_frame(name)
    if frame.empty:
        raise UpliftError(f"None of campaign {name!r}'s {info['campaign_customers']:,} customers has a purchase "
                          "before the send, so there is nothing to learn from.")
    progress.report(10, f"Campaign '{name}': {len(frame):,} customers with history before the send "
                        f"({info['excluded_no_history']:,} left out)")
    frame = capped_training_frame(frame, settings.UPLIFT_MAX_TRAIN_ROWS, seed=cfg.random_state)
    info["trained_on_customers"] = len(frame)
    if len(frame) < info["used_customers"]:
        progress.report(11, f"Learning from a sample of {len(frame):,} of them (stratified by arm and outcome)")
    from uplift.pipeline import campaign_checks

    campaign_checks(frame, list(FEATURE_COLUMNS), cfg)  # refuse before anything is registered
    features = list(FEATURE_COLUMNS)
    use_country = bool(getattr(settings, "MODELS_USE_COUNTRY", False))
    if use_country:  # off by default: measured to add nothing (bench/country_input_bench.py)
        from uplift.pipeline import common_countries, with_country_columns

        countries = common_countries(frame["country"]) if "country" in frame.columns else []
        frame = with_country_columns(frame, countries)
        features += [f"country={c}" for c in countries]
    churn_score, churn_rule = _churn_risk_rule()
    cutoff = default_cutoff()
    params = {"campaign": name, **{k: v for k, v in asdict(cfg).items() if k != "learners"},
              "learners": list(cfg.learners), "use_country": use_country}
    mv = start_model_version(KIND, {**params, "role": "champion"}, user=user, data_cutoff=cutoff.to_pydatetime())
    started = [mv]
    cmv = None
    try:
        result = train_uplift(frame, cfg, churn_risk=churn_score, profit=profit, features=features,
                              progress=lambda p, m: progress.report(10 + p * 6 // 10, m))
        champion = result.models[result.champion]
        holdout = _holdout_frame(result, frame, churn_score)
        for model in result.models.values():
            model.holdout = holdout  # the page re-ranks profit curves from this
        others = [k for k in result.models if k != result.champion]
        if others:
            loser = others[0]
            cmv = start_model_version(CHALLENGER_KIND, {**params, "role": "challenger", "learner": loser}, user=user,
                                      data_cutoff=cutoff.to_pydatetime())
            started.append(cmv)
            _register(CHALLENGER_KIND, result.models[loser], cmv,
                      _metrics(result, info, loser, "challenger", profit, churn_rule, holdout),
                      model_card_text(result, info, loser, "challenger — lower held-out Qini, not serving"))
        progress.report(72, f"Champion: {LEARNER_LABELS[result.champion]}. Scoring customers as of {cutoff.date()}")
        tx = load_transactions(before=cutoff)
        X = build_features(tx, cutoff, load_customers())
        metrics = _metrics(result, info, result.champion, "champion", profit, churn_rule, holdout)
        metrics["evaluation"] = result.evaluation  # every learner and naive rule, with curves, for the page
        metrics["scored_customers"] = len(X)
        if cmv is not None:
            metrics["challenger_version"] = {"id": cmv.pk, "version": cmv.version, "learner": cmv.params["learner"]}
        mv.params = {**mv.params, "learner": result.champion}
        mv.save(update_fields=["params"])
        scores = champion.score(X, profit) if len(X) else None
        metrics["groups"] = ({g: int((scores["group"] == g).sum()) for g in UpliftScore.Group.values}
                             if scores is not None else {})
        _register(KIND, champion, mv, metrics, model_card_text(result, info, result.champion, "champion"))
        n = write_scores(mv, profit, progress)
        promote(mv)
        progress.report(100, f"v{mv.version} active: {n:,} customers scored")
    except Exception as error:
        for started_mv in started:
            started_mv.refresh_from_db(fields=["status"])
            if started_mv.status in (ModelVersion.Status.TRAINING, ModelVersion.Status.READY):
                fail_model_version(started_mv, f"{type(error).__name__}: {error}")
        UpliftScore.objects.filter(model_version__in=started).delete()
        raise
    mv.refresh_from_db()
    if cmv is not None:
        cmv.refresh_from_db()
    return [mv] + ([cmv] if cmv is not None else [])


def _register(kind: str, model: UpliftModel, mv: ModelVersion, metrics: dict[str, Any], card: str) -> ModelVersion:
    model.metrics = {**model.metrics, "registry": {"kind": kind, "version": mv.version, "id": mv.pk}}
    path, _sha = write_artifact(kind, mv.version, model)
    return complete_model_version(mv, metrics, path, card)


def write_scores(mv: ModelVersion, profit: ProfitInputs, progress: ProgressReporter | None = None) -> int:
    """One ``UpliftScore`` per scorable customer, in chunks shared with the Celery workers; returns the count."""
    run = score_all_customers(mv, {"profit": asdict(profit)}, progress=progress, span=(75, 95))
    return rows_written(run)


def score_columns(scores: pd.DataFrame, scored_at: Any) -> dict[str, list]:
    """``UpliftScore`` columns of ``UpliftModel.score`` output (indexed by customer pk), for ``copy_rows``."""
    return {
        "customer_id": scores.index.to_numpy(dtype=np.int64).tolist(),
        **{name: scores[name].to_numpy(dtype=float).tolist()
           for name in ("uplift", "uplift_low", "uplift_high", "baseline", "revenue_uplift", "expected_profit")},
        "group": scores["group"].astype(str).tolist(),
        "contact": (scores["recommendation"] == "contact").tolist(),
        "scored_at": [scored_at] * len(scores),
    }


def score_chunk(mv: ModelVersion, model: UpliftModel, customer_pks: list[int], params: dict[str, Any]) -> ScoredChunk:
    """One chunk of batch scoring: these customers' features as of the version's cut-off, scored with the
    version's default profit inputs."""
    X = features_for_customers(customer_pks, mv.data_cutoff)
    if not len(X):
        return ScoredChunk({"customer_id": []})
    scores = model.score(X, ProfitInputs(**params["profit"]))
    groups = scores["group"].value_counts()
    return ScoredChunk(score_columns(scores, dt.datetime.fromisoformat(params["scored_at"])),
                       {"groups": {str(g): int(n) for g, n in groups.items()}})


def _scoring_params(mv: ModelVersion) -> dict[str, Any]:
    """A later "score all customers" run of a version uses the profit inputs it was trained with."""
    return {"profit": mv.metrics.get("profit_defaults") or asdict(default_profit_inputs())}


SCORER = ChunkScorer(kind=KIND, score_model=UpliftScore, score=score_chunk, params=_scoring_params)


# ---------------------------------------------------------------------------------------------
# profit targeting for other inputs (page)
# ---------------------------------------------------------------------------------------------


def profit_targeting(model: UpliftModel, inputs: ProfitInputs, population: int) -> dict[str, Any]:
    """Observed incremental profit curves on the held-out customers under ``inputs``: the model ranked
    by its expected profit, the churn-risk rule, random; the best cut-off; target-everyone."""
    from uplift.pipeline import expected_profit, profit_curve

    ho = model.holdout
    if ho is None or ho.empty:
        return {}
    k = model.learner
    exp_profit = expected_profit(ho[f"{k}_revenue_uplift"], ho[f"{k}_uplift"], ho[f"{k}_baseline"], inputs)
    args = (ho["converted"].to_numpy(), ho["revenue"].to_numpy(), ho["treated"].to_numpy())
    x, y_model = profit_curve(*args, exp_profit, inputs)
    _, y_churn = profit_curve(*args, ho["churn_risk"].to_numpy(), inputs)
    _, y_random = profit_curve(*args, np.random.default_rng(0).random(len(ho)), inputs)
    best = int(np.argmax(y_model))
    predicted_positive = float(np.mean(exp_profit > 0))
    return {
        "x": x.tolist(), "model": y_model.tolist(), "churn": y_churn.tolist(), "random": y_random.tolist(),
        "best_share": float(x[best]), "best_profit_per_customer": float(y_model[best]),
        "everyone_profit_per_customer": float(y_model[-1]), "population": population,
        "best_total": float(y_model[best] * population), "everyone_total": float(y_model[-1] * population),
        "churn_best_total": float(max(y_churn) * population), "predicted_positive_share": predicted_positive,
        "holdout": len(ho),
    }
