"""What a Customer2Vec version says in its model card."""

from __future__ import annotations

from rfm_portal.mlops.group_metrics import proportion_interval
from rfm_portal.mlops.model_cards import CardSections
from rfm_portal.mlops.models import ModelVersion


def _interval(share: float, n: int) -> str:
    lo, hi = proportion_interval(share * n, n)
    return f"{share:.0%} (95 % interval {lo:.0%}–{hi:.0%})"


def card_sections(mv: ModelVersion) -> CardSections:
    m, p = mv.metrics, mv.params
    q = m.get("quality") or {}
    n_q = int(q.get("sample", 0))
    recall_n = min(int(p.get("recall_queries", 500)), int(m.get("n_customers", 0)))
    agreement = _interval(q["favourite_category_agreement_at_10"], n_q) if q else ""
    loss = m.get("final_loss")
    quality = (
        f"- Neighbours share the customer's favourite category {agreement}"
        f" of the time, on {n_q:,} sampled customers (RFM features alone: "
        f"{q['favourite_category_agreement_rfm_at_10']:.0%}; chance {q['favourite_category_agreement_chance']:.0%}); "
        "the Wilson interval treats the sampled customers as independent.\n" if q else "")
    taste = m.get("taste_check") or {}
    taste_line = (f"- Against the generator's true tastes: purity@10 {taste['purity_at_10']:.2f} (RFM "
                  f"{taste['purity_at_10_rfm']:.2f}, chance {taste['purity_chance']:.2f}).\n"
                  if "purity_at_10" in taste else "")
    return CardSections(
        title="Customer2Vec lookalikes",
        intended_use="Represent each customer by what they buy (item2vec skip-gram on baskets + customer vectors, "
        "PV-DBOW style), so the portal can find lookalikes of a seed list (a FAISS index, cosine similarity), show a "
        "map of customers, and build lookalike audiences.",
        intended_users="Marketing analysts building lookalike audiences; CRM systems through "
        "`POST /similar_customers`; the campaign planner.",
        out_of_scope="Inferring sensitive traits from baskets (health, religion, family situation) or using "
        "neighbours as a proxy for them; decisions other than marketing contact; identifying people outside this "
        "customer base.",
        training_data=f"{m.get('n_customers', 0):,} customers, {m.get('n_products', 0):,} products, "
        f"{m.get('n_purchase_lines', 0):,} purchase lines, {m.get('n_basket_pairs', 0):,} within-basket product pairs "
        "from every purchase (returns left out).",
        features=f"Products bought together in a basket and by the same customer; nothing else (no RFM values, no "
        f"country, no demographics). {p.get('dim')} dimensions, {p.get('epochs')} epochs, {p.get('negatives')} "
        f"negative samples, seed {p.get('seed')} (deterministic).",
        metrics=f"- Search index: {m.get('index_kind', '')}, recall@10 against exact search "
        f"{m.get('index_recall_at_10', 0):.3f} on {recall_n:,} query customers.\n" + quality + taste_line
        + f"- Training loss at the end: {'–' if loss is None else round(loss, 4)}"
        f"; training took {m.get('train_seconds', 0):.1f} s.",
        validation="No labels exist for 'similar', so neighbours are checked against what can be checked: the "
        "share of neighbours with the same favourite category compared with RFM-only neighbours and chance; on "
        "generated data, against the true taste clusters; the approximate index against exact search.",
        limitations="Customers with one or two purchases get uncertain vectors; new customers are folded in from "
        "their products until the next retrain; similarity reflects co-purchase patterns of this catalogue and "
        "shifts when it changes.",
        ethics="Baskets can reveal sensitive traits; the model must not be used to infer or target them, and "
        "lookalike audiences inherit any bias of the seed list — review a seed list before expanding it. "
        "Campaigns built on lookalikes need an admin's approval.",
        group_note="Not computed: there is no accuracy label per customer for 'similar'. The neighbour checks "
        "above are for the whole base.",
    )
