"""What an uplift version (champion ``uplift`` or challenger ``uplift_challenger``) says in its model card."""

from __future__ import annotations

from rfm_portal.customers.features import FEATURE_COLUMNS, FEATURE_DOCS
from rfm_portal.mlops.group_metrics import proportion_interval
from rfm_portal.mlops.model_cards import CardSections
from rfm_portal.mlops.models import ModelVersion
from uplift.pipeline import LEARNER_LABELS, NORMALISATION


def card_sections(mv: ModelVersion) -> CardSections:
    m = mv.metrics
    c, info = m.get("checks") or {}, m.get("campaign") or {}
    learner = m.get("learner", "")
    boot = (m.get("group_performance") or {}).get("overall") or {}
    qini_ci = (f", bootstrap 95 % interval {boot['ci_low']:.4f} to {boot['ci_high']:.4f}"
               if boot.get("ci_low") is not None else "")
    n_t, n_c = int(c.get("n_treated", 0)), int(c.get("n_control", 0))
    t_lo, t_hi = proportion_interval(c.get("conversion_treated", 0) * n_t, n_t)
    c_lo, c_hi = proportion_interval(c.get("conversion_control", 0) * n_c, n_c)
    role = ("champion — serves the pages, the API and the campaign planner" if mv.kind == "uplift"
            else "challenger — lower held-out Qini, kept for comparison, not serving")
    top10 = (m.get("uplift_at") or {}).get("10")
    return CardSections(
        title=f"Uplift model — {LEARNER_LABELS.get(learner, learner)}",
        intended_use=f"Role: {role}.\n\nEstimate, per customer, how much contacting them changes the chance they "
        "buy within the campaign's outcome window (with a 95 % interval) and the effect on revenue, to choose whom "
        "to contact (persuadables), whom to leave alone (sleeping dogs) and how many to contact for the most profit.",
        intended_users="Campaign planners and marketing analysts in the portal; CRM systems through "
        "`POST /uplift_score`; the campaign planner's ranking and budget allocation.",
        out_of_scope="Offers, channels or audiences unlike the training campaign (the effect is that of this kind "
        "of offer); campaigns that were not randomised; any decision other than marketing contact (prices, credit, "
        "service); customers with no purchase before the send.",
        training_data=f"Campaign '{info.get('campaign', '')}': {info.get('campaign_customers', 0):,} customers, "
        f"{info.get('used_customers', 0):,} used ({info.get('excluded_no_history', 0):,} without a purchase before "
        f"the send were left out); sends from {str(info.get('sent_from', ''))[:10]} to "
        f"{str(info.get('sent_to', ''))[:10]}. {n_t:,} contacted, {n_c:,} held back. Features are built as of each "
        "customer's send time from earlier transactions only.",
        features=", ".join(f"{FEATURE_DOCS[f]['label']} (`{f}`)" if f in FEATURE_DOCS else f"`{f}`"
                           for f in FEATURE_COLUMNS) + ". Country is not an input.",
        metrics=f"Held-out evaluation ({c.get('n_holdout', boot.get('n', 0)):,} customers): Qini coefficient "
        f"{m.get('qini', 0):.4f}{qini_ci}; AUUC {m.get('auuc', 0):.4f}"
        + (f"; observed uplift in the top 10 % {top10:+.1%}" if top10 is not None else "")
        + f".\n\nWhole campaign: conversion {c.get('conversion_treated', 0):.1%} contacted (95 % interval "
        f"{t_lo:.1%}–{t_hi:.1%}) vs {c.get('conversion_control', 0):.1%} held back ({c_lo:.1%}–{c_hi:.1%}); "
        f"average effect {c.get('ate_conversion', 0):+.1%}.\n\n{m.get('normalisation', NORMALISATION)}",
        validation="Held-out split of the randomised campaign, stratified by arm and outcome; both learners are "
        "fitted on the training part only and ranked by held-out Qini (the served model is that fit, not refit). "
        f"Champion rule: {m.get('champion_rule', '')}. Outcome: {m.get('champion_reason', '')}. Covariate balance "
        f"between the arms: largest standardised difference {c.get('max_abs_smd', 0):.3f} (< 0.1 is balanced).",
        limitations="Learned from one past campaign: the effect drifts as offers, channels and seasons change; "
        "individual effects are uncertain (read the interval, not only the point); groups with few held-out "
        "customers or a missing arm are too few to judge; Qini is a ranking measure, not a profit guarantee.",
        ethics="No sensitive attribute is an input. The model finds 'sleeping dogs' whom contact makes less likely "
        "to buy: leave them alone rather than push harder. Don't use predicted persuadability to exploit "
        "vulnerable customers; respect contact-fatigue limits and opt-outs; campaigns need an admin's approval.",
    )
