"""What a segmentation version says in its model card, and the RFM-segment labels other apps' per-group
evaluations use (both registered with the core in SegmentationConfig.ready)."""

from __future__ import annotations

from datetime import datetime

from rfm_portal.mlops.model_cards import CardSections
from rfm_portal.mlops.models import ModelVersion
from segmentation import selectors
from segmentation.pipeline import SegmentationError, score_rfm


def rfm_segment_labels(customer_pks: list[int], as_of: datetime) -> dict[int, str]:
    """Each customer's named RFM segment as it was at ``as_of`` (quintiles over everyone buying before it)."""
    try:
        rfm = selectors.rfm_frame(as_of)
    except SegmentationError:
        return {}
    scored = score_rfm(rfm)
    wanted = set(customer_pks)
    return {int(pk): str(seg) for pk, seg in zip(scored["customer_id"], scored["segment"], strict=True)
            if int(pk) in wanted}


def card_sections(mv: ModelVersion) -> CardSections:
    m = mv.metrics
    counts = m.get("segment_counts") or {}
    shares = m.get("revenue_shares") or {}
    table = "\n".join(["| Segment | Customers | Share of net revenue |", "|---|---|---|"] + [
        f"| {name} | {n:,} | {'–' if shares.get(name) is None else f'{shares[name]:.1%}'} |"
        for name, n in sorted(counts.items(), key=lambda kv: -kv[1])])
    sil = (m.get("silhouette_by_k") or {}).get(str(m.get("k")))
    top = m.get("pareto_top20_share")
    return CardSections(
        title="RFM segmentation",
        intended_use="Describe the customer base by recency, frequency and monetary value: quintile scores R/F/M "
        "(1–5), a named segment from the documented R × FM rule map, and K-Means clusters on the same three values. "
        "Use it to prioritise and to choose the tone of a message, and as a filter for audiences.",
        intended_users="Marketing analysts (segment tables, audiences), campaign planners, and the other models of "
        "the portal, which report their accuracy per segment.",
        out_of_scope="Predicting an individual's future behaviour (use churn and CLTV for that); comparing scores "
        "across companies or data sets (quintiles are relative to this base); any decision about a person beyond "
        "marketing contact (credit, pricing, employment).",
        training_data=f"{m.get('customers', 0):,} customers with at least one purchase before the cut-off; customers "
        "with only returns are left out. Every transaction before the cut-off is read (no sampling).",
        features="Recency (days from the last purchase day to the cut-off day), frequency (distinct purchase "
        "invoices), monetary (purchases minus returns, i.e. net revenue). Nothing else: no demographics, no country.",
        metrics=f"k = {m.get('k')} clusters; silhouette at the chosen k {sil if sil is None else f'{sil:.3f}'}. "
        + (f"The top 20 % of customers bring {top:.0%} of net revenue. " if top is not None else "")
        + "These are descriptions of the whole customer base, not estimates from a sample, so segment counts and "
        "shares carry no sampling interval; the silhouette is computed on a seeded sample of at most 10,000 "
        "customers.\n\n" + table,
        validation=f"{m.get('k_explanation', '')} Segments follow a fixed rule map (no fitting); every customer gets "
        "exactly one segment. Quintile ties share a score (tests check the rule against hand-computed cases).",
        limitations="Quintiles are relative to this customer base and cut-off, so a score is not comparable across "
        "data sets; RFM ignores what customers buy, margins and acquisition channel; K-Means assumes roughly "
        "spherical groups in the transformed space and the silhouette rule favours few clusters; one-off buyers "
        "dominate frequency ties. Use it to prioritise, not to predict.",
        ethics="Segments are built from purchases only, never from sensitive attributes. A low segment is a "
        "description of past buying, not of a person's worth: don't use it to deny service or worsen terms. "
        "Heavy targeting of 'At risk' or 'Can't lose' segments can cause contact fatigue; see the limitations "
        "and ethical use page.",
        group_note="Not applicable: segmentation makes no prediction, so there is no accuracy to break down. "
        "Its segments are the groups the predictive models (churn, CLTV, uplift) report their accuracy by.",
    )
