"""Seeded retail data with ground truth: transactions, one randomised campaign, and the truth.

Pure: numpy and pandas only, no Django. ``generate`` draws everything from one
``numpy.random.Generator(seed)``, so the same arguments give byte-identical output.

The generative model (time is measured in days from ``start``; see ``GeneratorParams``):

1. **Acquisition.** Customer i makes a first purchase at t0_i ~ Uniform(0, acquisition_share × window).
   With ``acquisition_share`` = 1 acquisition is continuous: new customers keep arriving to the end of
   the window (so recent first-time buyers exist); those acquired after the campaign is sent are not in it.
2. **Purchases and dropout: BG/NBD** (Fader, Hardie & Lee 2005). λ_i ~ Gamma(shape r, rate α) purchases
   per day; p_i ~ Beta(a, b). While alive, inter-purchase times are Exponential(λ_i). After each *repeat*
   purchase the customer drops out for good with probability p_i (so nobody drops out at the first
   purchase, exactly as in the BG/NBD likelihood). The dropout time is the time of that last purchase.
   Customers still alive at the cutoff simply have no purchase after their last one.
3. **Spend: Gamma-Gamma** (Fader, Hardie & Lee 2005b). ν_i ~ Gamma(shape q, rate γ); each purchase's
   value z ~ Gamma(shape p, rate ν_i), so customer i's mean spend is p / ν_i. A purchase becomes an
   invoice of one or more lines whose integer quantities are stochastically rounded from a
   Dirichlet split of z over catalogue prices, so the invoice total is an unbiased, noisy copy of z.
4. **Taste.** K = 6 taste clusters, each with a preference vector over the 8 product categories
   (half its weight on a primary category, a quarter on a secondary, the rest spread evenly). A
   customer's own preference is Dirichlet(taste_concentration × cluster vector); every invoice line
   picks its category from it, then a product by within-category popularity (Zipf-like).
5. **Value ↔ taste.** The BG/NBD and Gamma-Gamma marginals are kept *exact*: λ and ν are drawn
   first, then the cluster is drawn with P(k) ∝ exp(β_f,k · z_f + β_m,k · z_m), where z_f, z_m are the
   standardised log λ and log ν. So clusters differ in frequency and spend level (e.g. "Kitchen
   regulars" buy often and cheaply, "Gift buyers" rarely and dearly; see ``TASTE_CLUSTERS``) and
   a segmentation on RFM + category mix can recover them, while λ ~ Gamma(r, α) still holds overall.
6. **Campaign.** At ``campaign_at`` × window, each customer acquired before it is
   treated with probability 1/2, independently of everything. Outcome: converted = at least one
   purchase in [sent_at, sent_at + outcome_window_days); revenue = the gross value of those invoices.
   The conversion *is* a transaction in the data. Baseline (untreated) conversion probability is
   b_i = alive_at_send × (1 − exp(−λ_i W)), exact under the BG/NBD (memoryless waiting time).
   The true effect τ_i on the conversion probability is a function of recency and frequency at send
   and of taste cluster (``TreatmentEffect``), 0 for customers already gone, clipped to [−b_i, 1 − b_i]:
   lapsing-but-alive customers respond well, recently active frequent buyers are "sleeping dogs"
   with a negative effect. It is realised consistently with the transactions: a treated customer
   with τ > 0 who would not have bought gets an extra purchase in the window with probability
   τ / (1 − b); a treated customer with τ < 0 who would have bought is annoyed away with probability
   −τ / b: all purchases from sent_at on are removed and the dropout time is sent_at. So
   P(converted | treated) = b + τ exactly.
7. **Returns.** A small share of invoices is partly returned 1–21 days later ("C" + invoice number,
   negative quantity), never after the customer's dropout or the cutoff.

Clock times: process day d + fraction f is written as calendar day d at 08:00 + f × 12 h (shop
hours). The map is monotone, so the order of events, and "no purchase after dropout", survive it.

The truth table is for evaluation only: it must never feed a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

SAMPLE_CUSTOMERS = 3000  # the committed data/sample*.csv: size of the sample ...
SAMPLE_SEED = 42  # ... and its seed
SAMPLE_START = date(2023, 1, 1)
SAMPLE_END = date(2024, 12, 31)  # last day of data (inclusive)

TRANSACTION_COLUMNS = (
    "invoice", "customer_id", "sku", "description", "category", "invoiced_at", "quantity", "unit_price", "country",
)  # fmt: skip
CAMPAIGN_COLUMNS = ("customer_id", "campaign", "treated", "converted", "revenue", "sent_at")
TRUTH_COLUMNS = (
    "customer_id", "taste_cluster", "taste_name", "purchase_rate_per_day", "dropout_prob", "spend_nu",
    "mean_spend", "acquired_at", "dropout_at", "alive_at_cutoff", "alive_at_send", "campaign_churned",
    "recency_at_send_days", "frequency_at_send", "baseline_conversion", "true_uplift",
)  # fmt: skip
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
TRUTH_NOTICE = (
    "GROUND TRUTH FOR EVALUATION ONLY. sample_truth.csv holds the latent parameters that generated "
    "the sample (purchase rate, dropout, spend, taste cluster, true campaign uplift). It must never "
    "be imported or used as a model input; use it only to score what models recover."
)

CATEGORIES = (
    "Home & Kitchen", "Fashion", "Garden", "Toys & Games", "Stationery", "Gifts & Decor", "Beauty", "Electronics",
)  # fmt: skip
# Per category: sku prefix, median price (GBP), adjectives, nouns. Products are adjective × noun.
CATALOGUE = {
    "Home & Kitchen": ("HK", 6.5, ("Enamel", "Ceramic", "Bamboo", "Vintage", "Glass", "Copper"),
                       ("Mug", "Teapot", "Bowl", "Chopping Board", "Storage Jar", "Tea Towel", "Cake Tin")),
    "Fashion": ("FA", 16.0, ("Linen", "Wool", "Striped", "Denim", "Cotton", "Silk"),
                ("Scarf", "Shirt", "Tote Bag", "Beanie", "Belt", "Socks", "Gloves")),
    "Garden": ("GA", 11.0, ("Terracotta", "Galvanised", "Wooden", "Solar", "Rustic", "Hanging"),
               ("Planter", "Watering Can", "Bird Feeder", "Lantern", "Trowel", "Seed Tray", "Wind Chime")),
    "Toys & Games": ("TG", 8.0, ("Wooden", "Retro", "Magnetic", "Mini", "Classic", "Glow"),
                     ("Puzzle", "Card Game", "Spinning Top", "Building Blocks", "Yo-Yo", "Kite", "Marbles")),
    "Stationery": ("ST", 2.5, ("Kraft", "Floral", "Recycled", "Pastel", "Dotted", "Gold"),
                   ("Notebook", "Pencil Set", "Gift Wrap", "Sticker Sheet", "Greeting Card", "Envelopes", "Tape")),
    "Gifts & Decor": ("GD", 9.0, ("Heart", "Star", "Vintage", "Scented", "Mirrored", "Painted"),
                      ("Candle", "Photo Frame", "Trinket Box", "Wall Sign", "Ornament", "Doorstop", "Vase")),
    "Beauty": ("BE", 9.5, ("Lavender", "Rose", "Citrus", "Oat", "Coconut", "Mint"),
               ("Soap", "Hand Cream", "Bath Salts", "Lip Balm", "Body Scrub", "Shampoo Bar", "Face Mask")),
    "Electronics": ("EL", 18.0, ("Wireless", "Portable", "Compact", "LED", "USB", "Smart"),
                    ("Speaker", "Charger", "Desk Lamp", "Earbuds", "Power Bank", "Alarm Clock", "Cable Set")),
}  # fmt: skip
PRODUCTS_PER_CATEGORY = 40

COUNTRIES = (
    ("United Kingdom", 0.86), ("Germany", 0.035), ("France", 0.03), ("EIRE", 0.025), ("Netherlands", 0.015),
    ("Spain", 0.012), ("Belgium", 0.012), ("Norway", 0.011),
)  # fmt: skip


@dataclass(frozen=True)
class TasteCluster:
    """A taste cluster: where its preference weight sits and how it loads on frequency and spend."""

    name: str
    primary: str
    secondary: str
    frequency_loading: float  # β_f: + means members tend to buy more often than average
    spend_loading: float  # β_m: + means members tend to spend more per purchase
    uplift_shift: float  # added to the campaign effect τ for members


TASTE_CLUSTERS = (
    TasteCluster("Kitchen regulars", "Home & Kitchen", "Stationery", 1.0, -0.8, 0.00),
    TasteCluster("Fashion lovers", "Fashion", "Beauty", 0.6, 0.8, 0.03),
    TasteCluster("Gardeners", "Garden", "Home & Kitchen", -0.6, 0.3, 0.02),
    TasteCluster("Young families", "Toys & Games", "Fashion", 0.3, -0.3, 0.05),
    TasteCluster("Gift buyers", "Gifts & Decor", "Stationery", -1.0, 1.0, 0.08),
    TasteCluster("Gadget fans", "Electronics", "Toys & Games", -0.3, 0.6, -0.02),
)


@dataclass(frozen=True)
class TreatmentEffect:
    """τ_raw = base + cluster.uplift_shift + lapsing_bonus·[recency > lapsing_days]
    − sleeping_dog_penalty·[recency ≤ sleeping_dog_recency_days and frequency ≥ sleeping_dog_frequency];
    then τ = clip(τ_raw, −b, 1 − b) for customers alive at send, 0 for those already gone."""

    base: float = 0.06
    lapsing_days: int = 90
    lapsing_bonus: float = 0.10
    sleeping_dog_recency_days: int = 30
    sleeping_dog_frequency: int = 4
    sleeping_dog_penalty: float = 0.30


@dataclass(frozen=True)
class GeneratorParams:
    """Generating parameters; rates are per day. The defaults give an online gift/home retailer:
    E[λ] = r/α = 0.02 purchases a day (≈ 7 a year, CV 1/√r ≈ 1.1), E[p] = a/(a+b) ≈ 0.17, and a
    mean spend per purchase of E[p/ν] = p·γ/(q − 1) ≈ £33."""

    r: float = 0.8
    alpha: float = 40.0
    a: float = 1.2
    b: float = 6.0
    p: float = 4.0
    q: float = 4.0
    gamma: float = 25.0
    acquisition_share: float = 2 / 3  # first purchases spread uniformly over this share of the window (1 = continuous)
    campaign_at: float = 0.75  # the campaign is sent this far through the window
    outcome_window_days: int = 30
    return_rate: float = 0.02  # share of invoices partly returned
    taste_concentration: float = 12.0  # Dirichlet concentration of a customer's taste around the cluster's
    spend_per_line: float = 25.0  # an invoice has 1 + Poisson(min(z / spend_per_line, 6)) lines
    treatment: TreatmentEffect = field(default_factory=TreatmentEffect)


@dataclass
class GeneratedData:
    """Everything ``generate`` makes. ``truth`` is for evaluation only."""

    transactions: pd.DataFrame  # the project's import schema (TRANSACTION_COLUMNS)
    campaigns: pd.DataFrame  # CAMPAIGN_COLUMNS
    truth: pd.DataFrame  # TRUTH_COLUMNS, one row per customer
    products: pd.DataFrame  # sku, description, category, unit_price, popularity
    meta: dict  # parameters, dates, cluster definitions, counts (JSON-serialisable)


def cluster_preferences() -> np.ndarray:
    """K × C matrix of taste-cluster preference over categories (rows sum to 1)."""
    n_cat = len(CATEGORIES)
    prefs = np.full((len(TASTE_CLUSTERS), n_cat), 0.25 / (n_cat - 2))
    for k, cluster in enumerate(TASTE_CLUSTERS):
        prefs[k, CATEGORIES.index(cluster.primary)] = 0.50
        prefs[k, CATEGORIES.index(cluster.secondary)] = 0.25
    return prefs


def make_products(rng: np.random.Generator) -> pd.DataFrame:
    """PRODUCTS_PER_CATEGORY products per category: sku, description, price (lognormal around the
    category median, psychological .x9 endings) and a Zipf-like popularity within the category."""
    frames = []
    for category in CATEGORIES:
        prefix, median, adjectives, nouns = CATALOGUE[category]
        combos = [f"{adj} {noun}" for adj in adjectives for noun in nouns]
        chosen = rng.choice(len(combos), size=PRODUCTS_PER_CATEGORY, replace=False)
        raw = median * np.exp(rng.normal(0.0, 0.45, PRODUCTS_PER_CATEGORY))
        price = np.maximum(np.round(raw * 4) / 4 - 0.01, 0.29)
        popularity = 1.0 / np.arange(1, PRODUCTS_PER_CATEGORY + 1) ** 0.8
        frames.append(
            pd.DataFrame(
                {
                    "sku": [f"{prefix}-{i + 1:03d}" for i in range(PRODUCTS_PER_CATEGORY)],
                    "description": [combos[j] for j in chosen],
                    "category": category,
                    "unit_price": np.round(price, 2),
                    "popularity": popularity / popularity.sum(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def simulate_bgnbd(
    rng: np.random.Generator, t0: np.ndarray, lam: np.ndarray, p_drop: np.ndarray, horizon: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BG/NBD purchase process for every customer at once.

    Loops over purchase *steps*, not customers: each step draws the next inter-purchase time for all
    customers still alive and inside the window, then the dropout coin for those who bought.
    Returns (customer index, purchase time) of every purchase, and the dropout time (NaN = alive).
    """
    n = t0.size
    customers, times = [np.arange(n)], [t0]
    dropout = np.full(n, np.nan)
    active, current = np.arange(n), t0
    while active.size:
        nxt = current + rng.exponential(1.0 / lam[active])
        inside = nxt < horizon
        active, nxt = active[inside], nxt[inside]
        customers.append(active)
        times.append(nxt)
        drop = rng.random(active.size) < p_drop[active]
        dropout[active[drop]] = nxt[drop]
        active, current = active[~drop], nxt[~drop]
    return np.concatenate(customers), np.concatenate(times), dropout


def _clock(start: date, t: np.ndarray) -> np.ndarray:
    """Process time (days from start) → datetime64[s]; day d + fraction f → day d, 08:00 + f × 12 h."""
    day = np.floor(t)
    seconds = day * 86400 + 8 * 3600 + np.round((t - day) * 12 * 3600)
    return np.datetime64(start, "s") + seconds.astype("int64").astype("timedelta64[s]")


def _assign_clusters(rng: np.random.Generator, lam: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """Taste cluster given value: P(k) ∝ exp(β_f,k z_f + β_m,k z_m) (softmax; see module docstring).

    z_m uses −log ν because the mean spend p/ν falls as ν rises.
    """
    z_f = (np.log(lam) - np.log(lam).mean()) / np.log(lam).std()
    z_m = (-np.log(nu) + np.log(nu).mean()) / np.log(nu).std()
    beta_f = np.array([c.frequency_loading for c in TASTE_CLUSTERS])
    beta_m = np.array([c.spend_loading for c in TASTE_CLUSTERS])
    logits = z_f[:, None] * beta_f + z_m[:, None] * beta_m
    weights = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    u = rng.random(lam.size)
    return np.minimum((u[:, None] > cumulative).sum(axis=1), len(TASTE_CLUSTERS) - 1)


def _group_first_index(sorted_keys: np.ndarray) -> np.ndarray:
    """Index of the first row of each run of equal keys in a sorted array."""
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def generate(
    n_customers: int,
    seed: int,
    start: date = SAMPLE_START,
    end: date = SAMPLE_END,
    params: GeneratorParams | None = None,
) -> GeneratedData:
    """Generate ``n_customers`` customers' transactions from ``start`` to ``end`` (inclusive), one
    randomised campaign, and the ground truth. Deterministic in (n_customers, seed, start, end, params).

    The cutoff (the instant ``alive_at_cutoff`` refers to) is ``end`` + 1 day at 00:00.
    """
    params = params or GeneratorParams()
    if n_customers < 1:
        raise ValueError("n_customers must be at least 1")
    if not (0 < params.acquisition_share <= 1 and 0 < params.campaign_at < 1):
        raise ValueError("need 0 < acquisition_share ≤ 1 and 0 < campaign_at < 1")
    rng = np.random.default_rng(seed)
    n = n_customers
    horizon = float((end - start).days + 1)
    send = float(np.floor(params.campaign_at * horizon))  # whole day: sent at 08:00
    window = float(params.outcome_window_days)
    if send + window > horizon:
        raise ValueError("the campaign's outcome window must end inside the observation window")
    treatment = params.treatment

    products = make_products(rng)
    prefs = cluster_preferences()

    # --- Customers: value first (exact BG/NBD and Gamma-Gamma marginals), then taste given value.
    lam = rng.gamma(params.r, 1.0 / params.alpha, n)
    p_drop = rng.beta(params.a, params.b, n)
    nu = rng.gamma(params.q, 1.0 / params.gamma, n)
    cluster = _assign_clusters(rng, lam, nu)
    taste = rng.gamma(params.taste_concentration * prefs[cluster])
    taste /= taste.sum(axis=1, keepdims=True)
    country_names = np.array([c for c, _ in COUNTRIES])
    country_p = np.array([w for _, w in COUNTRIES])
    country = country_names[rng.choice(len(COUNTRIES), size=n, p=country_p / country_p.sum())]
    t0 = rng.uniform(0.0, params.acquisition_share * horizon, n)

    # --- Natural purchase process.
    cust, t, dropout = simulate_bgnbd(rng, t0, lam, p_drop, horizon)

    # --- Campaign: state at send, true effect, random assignment, consistent outcome.
    before = t < send
    in_campaign = t0 < send  # customers acquired later are simply not in the campaign
    frequency_at_send = np.bincount(cust[before], minlength=n)
    last_before = np.full(n, -np.inf)
    np.maximum.at(last_before, cust[before], t[before])
    recency_at_send = np.where(in_campaign, send - last_before, np.nan)
    alive_at_send = in_campaign & (np.isnan(dropout) | (dropout >= send))
    baseline = np.where(alive_at_send, 1.0 - np.exp(-lam * window), 0.0)
    shift = np.array([c.uplift_shift for c in TASTE_CLUSTERS])[cluster]
    sleeping_dog = (recency_at_send <= treatment.sleeping_dog_recency_days) & (
        frequency_at_send >= treatment.sleeping_dog_frequency
    )
    tau_raw = (
        treatment.base
        + shift
        + treatment.lapsing_bonus * (recency_at_send > treatment.lapsing_days)
        - treatment.sleeping_dog_penalty * sleeping_dog
    )
    tau = np.where(alive_at_send, np.clip(tau_raw, -baseline, 1.0 - baseline), 0.0)
    tau = np.where(in_campaign, tau, np.nan)  # no effect is defined for customers not in the campaign
    treated = (rng.random(n) < 0.5) & in_campaign
    in_window = (t >= send) & (t < send + window)
    natural_conversion = np.bincount(cust[in_window], minlength=n) > 0
    u_effect = rng.random(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        annoyed = treated & (tau < 0) & natural_conversion & (u_effect < -tau / baseline)
        persuaded = treated & (tau > 0) & ~natural_conversion & (u_effect < tau / (1.0 - baseline))
    # Annoyed "sleeping dogs" leave at send: their purchases from then on never happen.
    keep = ~(annoyed[cust] & (t >= send))
    cust, t = cust[keep], t[keep]
    dropout[annoyed] = send
    # Persuaded customers make one extra purchase in the window (the offer's conversion).
    extra = np.flatnonzero(persuaded)
    cust = np.concatenate([cust, extra])
    t = np.concatenate([t, send + rng.uniform(0.0, window, extra.size)])

    # --- Invoices in time order, their spend, and baskets.
    order = np.lexsort((cust, t))
    cust, t = cust[order], t[order]
    n_inv = cust.size
    spend = rng.gamma(params.p, 1.0 / nu[cust])
    n_lines = 1 + np.minimum(rng.poisson(np.minimum(spend / params.spend_per_line, 6.0)), 9)
    line_inv = np.repeat(np.arange(n_inv), n_lines)
    first_line = np.r_[0, np.cumsum(n_lines)[:-1]]
    # Category from the customer's own taste, product by popularity within the category.
    line_taste = np.cumsum(taste[cust[line_inv]], axis=1)
    category = np.minimum((rng.random(line_inv.size)[:, None] > line_taste).sum(axis=1), len(CATEGORIES) - 1)
    cat_codes = products["category"].map({c: i for i, c in enumerate(CATEGORIES)}).to_numpy()
    ladder = cat_codes + products.groupby("category", sort=False)["popularity"].cumsum().to_numpy()
    product = np.minimum(np.searchsorted(ladder, category + rng.random(line_inv.size)), len(products) - 1)
    price = products["unit_price"].to_numpy()[product]
    # Split the spend over the lines (Dirichlet(2)) and round quantities stochastically: unbiased totals.
    share = rng.gamma(2.0, 1.0, line_inv.size)
    share /= np.bincount(line_inv, weights=share)[line_inv]
    quantity = np.floor(spend[line_inv] * share / price + rng.random(line_inv.size)).astype(np.int64)
    empty = np.bincount(line_inv, weights=quantity)[line_inv] == 0
    quantity[empty & (np.arange(line_inv.size) == first_line[line_inv])] = 1  # an invoice has ≥ 1 item
    invoice_no = 500001 + np.arange(n_inv)
    lines = quantity > 0
    line_inv, product, quantity = line_inv[lines], product[lines], quantity[lines]

    # --- Returns: part of one line, 1–21 days later, only while the customer is around.
    lines_per_inv = np.bincount(line_inv, minlength=n_inv)
    starts = _group_first_index(line_inv)
    returning = np.flatnonzero(rng.random(n_inv) < params.return_rate)
    ret_line = starts[returning] + np.floor(rng.random(returning.size) * lines_per_inv[returning]).astype(np.int64)
    ret_qty = 1 + np.floor(rng.random(returning.size) * quantity[ret_line]).astype(np.int64)
    ret_t = t[returning] + rng.uniform(1.0, 21.0, returning.size)
    ret_drop = dropout[cust[returning]]
    ok = (ret_t < horizon) & (np.isnan(ret_drop) | (ret_t <= ret_drop))
    returning, ret_line, ret_qty, ret_t = returning[ok], ret_line[ok], ret_qty[ok], ret_t[ok]

    # --- Assemble the transactions table (purchases and returns), sorted by time then invoice.
    customer_ids = np.array([str(10001 + i) for i in range(n)], dtype=object)
    all_inv = np.concatenate([line_inv, returning])
    all_product = np.concatenate([product, product[ret_line]])
    all_qty = np.concatenate([quantity, -ret_qty])
    is_ret = np.r_[np.zeros(line_inv.size, dtype=bool), np.ones(returning.size, dtype=bool)]
    when = _clock(start, np.concatenate([t[line_inv], ret_t]))
    # Numeric sort keys (time, invoice number, purchase before its return, line order): fast and stable.
    order = np.lexsort((np.arange(all_inv.size), is_ret, invoice_no[all_inv], when))
    all_inv, all_product, all_qty, is_ret, when = (a[order] for a in (all_inv, all_product, all_qty, is_ret, when))
    row_cust = cust[all_inv]
    invoice_text = invoice_no[all_inv].astype(str).astype(object)
    invoice_text[is_ret] = "C" + invoice_text[is_ret]
    transactions = pd.DataFrame(
        {
            "invoice": invoice_text,
            "customer_id": customer_ids[row_cust],
            "sku": products["sku"].to_numpy()[all_product],
            "description": products["description"].to_numpy()[all_product],
            "category": products["category"].to_numpy()[all_product],
            "invoiced_at": when,
            "quantity": all_qty,
            "unit_price": products["unit_price"].to_numpy()[all_product],
            "country": country[row_cust],
        }
    )

    # --- Campaign outcome, read off the final purchases (so it *is* the transactions).
    invoice_value = np.bincount(line_inv, weights=quantity * price[lines], minlength=n_inv)
    outcome = (t >= send) & (t < send + window)
    converted = np.bincount(cust[outcome], minlength=n) > 0
    revenue = np.round(np.bincount(cust[outcome], weights=invoice_value[outcome], minlength=n), 2)
    sent_at = _clock(start, np.array([send]))[0]
    campaign_name = f"offer-{pd.Timestamp(sent_at):%Y-%m}"
    campaigns = pd.DataFrame(
        {
            "customer_id": customer_ids[in_campaign],
            "campaign": campaign_name,
            "treated": treated[in_campaign].astype(np.int64),
            "converted": converted[in_campaign].astype(np.int64),
            "revenue": revenue[in_campaign],
            "sent_at": np.full(int(in_campaign.sum()), sent_at),
        }
    )

    dropout_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[s]")
    gone = ~np.isnan(dropout)
    dropout_at[gone] = _clock(start, dropout[gone])
    truth = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "taste_cluster": cluster,
            "taste_name": np.array([c.name for c in TASTE_CLUSTERS], dtype=object)[cluster],
            "purchase_rate_per_day": lam,
            "dropout_prob": p_drop,
            "spend_nu": nu,
            "mean_spend": params.p / nu,
            "acquired_at": _clock(start, t0),
            "dropout_at": dropout_at,
            "alive_at_cutoff": ~gone,
            "alive_at_send": alive_at_send,
            "campaign_churned": annoyed,
            "recency_at_send_days": recency_at_send,
            "frequency_at_send": frequency_at_send,
            "baseline_conversion": baseline,
            "true_uplift": tau,
        }
    )
    cutoff = datetime.combine(end + timedelta(days=1), datetime.min.time())
    meta = {
        "notice": TRUTH_NOTICE,
        "seed": seed,
        "n_customers": n,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "cutoff": cutoff.strftime(TIME_FORMAT),
        "time_unit": "day",
        "params": {k: v for k, v in asdict(params).items() if k != "treatment"},
        "treatment_effect": asdict(treatment),
        "campaign": {
            "name": campaign_name,
            "sent_at": pd.Timestamp(sent_at).strftime(TIME_FORMAT),
            "outcome_window_days": params.outcome_window_days,
            "converted_means": "at least one purchase in [sent_at, sent_at + outcome_window_days)",
            "revenue_means": "gross value of those purchases",
            "treatment_probability": 0.5,
        },
        "categories": list(CATEGORIES),
        "taste_clusters": [
            {
                "id": k,
                "name": c.name,
                "primary": c.primary,
                "secondary": c.secondary,
                "frequency_loading": c.frequency_loading,
                "spend_loading": c.spend_loading,
                "uplift_shift": c.uplift_shift,
                "category_preference": [round(float(x), 6) for x in prefs[k]],
            }
            for k, c in enumerate(TASTE_CLUSTERS)
        ],
        "counts": {
            "transaction_lines": len(transactions),
            "invoices": int(n_inv),
            "return_lines": int(returning.size),
            "products": len(products),
            "treated": int(treated.sum()),
            **({} if in_campaign.all() else {"not_in_campaign": int((~in_campaign).sum())}),
            "converted": int(converted.sum()),
            "alive_at_cutoff": int((~gone).sum()),
            "campaign_churned": int(annoyed.sum()),
            "campaign_extra_purchases": int(extra.size),
        },
    }
    return GeneratedData(transactions=transactions, campaigns=campaigns, truth=truth, products=products, meta=meta)


def write_outputs(data: GeneratedData, out_dir: str | Path, prefix: str = "sample") -> dict[str, Path]:
    """Write {prefix}.csv, {prefix}_campaigns.csv, {prefix}_truth.csv and {prefix}_meta.json.

    Formats are fixed (timestamps 'YYYY-MM-DD HH:MM:SS', money with 2 decimals, no run timestamp in
    the meta), so the same data always gives the same bytes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "transactions": out / f"{prefix}.csv",
        "campaigns": out / f"{prefix}_campaigns.csv",
        "truth": out / f"{prefix}_truth.csv",
        "meta": out / f"{prefix}_meta.json",
    }
    data.transactions.to_csv(
        paths["transactions"], index=False, float_format="%.2f", date_format=TIME_FORMAT, lineterminator="\n"
    )
    data.campaigns.to_csv(
        paths["campaigns"], index=False, float_format="%.2f", date_format=TIME_FORMAT, lineterminator="\n"
    )
    truth = data.truth.copy()
    for column in ("alive_at_cutoff", "alive_at_send", "campaign_churned"):
        truth[column] = truth[column].astype(np.int64)
    truth.to_csv(paths["truth"], index=False, float_format="%.6g", date_format=TIME_FORMAT, lineterminator="\n")
    paths["meta"].write_text(json.dumps(data.meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return paths
