"""What a churn version (champion ``churn`` or challenger ``churn_challenger``) says in its model card."""

from __future__ import annotations

from rfm_portal.customers.features import FEATURE_COLUMNS, FEATURE_DOCS
from rfm_portal.mlops.group_metrics import auc_interval, proportion_interval
from rfm_portal.mlops.model_cards import CardSections
from rfm_portal.mlops.models import ModelVersion

MODEL_LABELS = {"logistic": "logistic regression", "lightgbm": "LightGBM gradient boosting",
                "hist_gb": "histogram gradient boosting"}


def card_sections(mv: ModelVersion) -> CardSections:
    m, p = mv.metrics, mv.params
    H = p.get("horizon_days", 90)
    model_kind = m.get("model_kind") or p.get("model_kind", "")
    tw, hw = m["train_window"], m["holdout_window"]
    n, pos = int(m["n"]), int(m["positives"])
    lo, hi = auc_interval(m["roc_auc"], pos, n - pos)
    r_lo, r_hi = proportion_interval(pos, n)
    boot = (m.get("group_performance") or {}).get("overall") or {}
    boot_text = (f" (bootstrap: {boot['ci_low']:.3f}–{boot['ci_high']:.3f})"
                 if boot.get("ci_low") is not None else "")
    cal = m.get("calibration") or {}
    pairs = list(zip(cal.get("prob_pred", []), cal.get("prob_true", []), strict=False))
    worst = max((abs(a - b) for a, b in pairs), default=None)
    features = p.get("features") or [f for f in FEATURE_COLUMNS if not (model_kind == "logistic"
                                                                         and f == "recency_days")]
    role = "champion — serves the pages and the API" if mv.kind == "churn" else "challenger — lost the backtest, " \
        "kept for comparison, not serving"
    return CardSections(
        title=f"Churn model — {MODEL_LABELS.get(model_kind, model_kind)}",
        intended_use=f"Role: {role}.\n\nDefinition of churn: a customer churns when they make no purchase within "
        f"{H} days after the cut-off. The business is "
        "non-contractual, so nobody 'cancels'; silence for the horizon is the signal. Intended use: rank existing "
        "customers (at least one purchase) by the risk of going quiet, to choose whom a retention campaign should "
        "contact, and explain each score (SHAP) and what would lower it (counterfactuals).",
        intended_users="Marketing analysts and campaign planners in the portal; CRM systems through "
        "`POST /predict_churn` (API key); the live risk feed on wall dashboards.",
        out_of_scope="Decisions about individuals beyond marketing contact (credit, pricing, service levels, "
        "employment); customers with no purchase yet; contractual subscriptions (the definition is silence, not "
        "cancellation); judging whether a campaign *would* keep a customer (that is uplift's question).",
        training_data=f"Backtest: trained on features as of {tw['feature_cutoff'][:10]} with labels up to "
        f"{tw['label_end'][:10]} ({tw['customers']:,} customers, churn rate {tw['churn_rate']:.0%}); evaluated "
        f"on features as of {hw['feature_cutoff'][:10]} with labels up to {hw['label_end'][:10]} "
        f"({hw['customers']:,} customers). The stored model is refit on the latest window and scores customers as "
        "of the cut-off. Rows are customers with at least one purchase before the feature date.",
        features=", ".join(f"{FEATURE_DOCS[f]['label']} (`{f}`)" if f in FEATURE_DOCS else f"`{f}`"
                           for f in features) + ". Country is not an input.",
        metrics=f"On {n:,} evaluation customers ({pos:,} churned; rate {pos / max(n, 1):.1%}, 95 % interval "
        f"{r_lo:.1%}–{r_hi:.1%}):\n\n"
        f"- ROC-AUC {m['roc_auc']:.3f}, 95 % interval {lo:.3f}–{hi:.3f} (Hanley–McNeil){boot_text}\n"
        f"- PR-AUC {m['pr_auc']:.3f}; Brier score {m['brier']:.4f}; log loss {m['log_loss']:.4f}\n"
        + (f"- Calibration: mean predicted vs observed churn rate per score decile differ by at most "
           f"{worst:.1%}\n" if worst is not None else ""),
        validation="Out-of-time backtest, never a random split: models are trained on the window ending "
        f"{H} days earlier and evaluated on the latest window, exactly like scoring the future with a model "
        f"trained on the past. Champion rule: {m.get('champion_rule', '')}. Outcome: {m.get('champion_reason', '')}.",
        limitations="Learns from purchase history only (no marketing contacts, web visits or service tickets); a "
        "customer whose usual gap between orders is longer than the horizon looks risky even when on schedule; "
        "probabilities are calibrated on the latest window and drift as buying seasons change — retrain "
        "regularly; counterfactuals are feature-space suggestions, not causal effects of a campaign (see Uplift). "
        "Small groups (few customers of a country or segment) are too few to judge. Within one RFM segment the "
        "AUC is naturally lower than overall: the segment already separates risky from safe customers, so ranking "
        "inside it is harder — groups are therefore compared with the typical group, and a flag should be read "
        "together with that group's calibration (mean predicted vs observed).",
        ethics="No sensitive attribute (and not country) is a model input. A high risk score must not lead to "
        "worse treatment (prices, service); it is a reason to consider contact, and whether contact helps is "
        "uplift's question — contacting 'sleeping dogs' can cause the churn it tries to prevent. Campaigns built "
        "on it need an admin's approval. Groups flagged below are served less accurately: check them by hand "
        "before targeting them.",
    )
