"""The seeded generator: schema, determinism, and that its ground truth really describes its data."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rfm_portal.customers import generator as gen
from rfm_portal.customers.importing import TRANSACTION_OPTIONAL, TRANSACTION_REQUIRED

N = 20_000  # large enough for the statistical checks to be sharp, still under a second to generate
SEED = 11


@pytest.fixture(scope="module")
def data() -> gen.GeneratedData:
    return gen.generate(N, SEED)


@pytest.fixture(scope="module")
def sent_at(data) -> pd.Timestamp:
    return pd.Timestamp(data.meta["campaign"]["sent_at"])


@pytest.fixture(scope="module")
def purchases(data) -> pd.DataFrame:
    """Purchase lines (returns left out) with their amount."""
    tx = data.transactions
    out = tx[tx["quantity"] > 0].copy()
    out["amount"] = out["quantity"] * out["unit_price"]
    return out


@pytest.fixture(scope="module")
def frame(data) -> pd.DataFrame:
    """Campaign rows joined with the truth, one row per customer."""
    return data.campaigns.merge(data.truth, on="customer_id", validate="one_to_one")


# --- Schema and determinism ------------------------------------------------------------------


def test_transactions_have_exactly_the_import_schema(data, tmp_path):
    assert tuple(data.transactions.columns) == gen.TRANSACTION_COLUMNS
    assert set(gen.TRANSACTION_COLUMNS) == set(TRANSACTION_REQUIRED) | set(TRANSACTION_OPTIONAL)
    assert tuple(data.campaigns.columns) == gen.CAMPAIGN_COLUMNS
    assert tuple(data.truth.columns) == gen.TRUTH_COLUMNS
    small = gen.generate(300, 5)
    paths = gen.write_outputs(small, tmp_path)
    text = pd.read_csv(paths["transactions"], dtype=str, keep_default_na=False)
    assert list(text.columns) == list(gen.TRANSACTION_COLUMNS)
    assert text["invoiced_at"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").all()
    assert text["unit_price"].str.fullmatch(r"\d+\.\d{2}").all()
    assert text["quantity"].str.fullmatch(r"-?\d+").all()
    assert (text["quantity"].astype(int) != 0).all()
    assert (text["invoice"].str.startswith("C") == (text["quantity"].astype(int) < 0)).all()
    campaigns = pd.read_csv(paths["campaigns"], dtype=str, keep_default_na=False)
    assert list(campaigns.columns) == list(gen.CAMPAIGN_COLUMNS)
    assert campaigns["treated"].isin(["0", "1"]).all() and campaigns["converted"].isin(["0", "1"]).all()
    assert campaigns["revenue"].str.fullmatch(r"\d+\.\d{2}").all()
    assert "evaluation only" in paths["meta"].read_text().lower()


def test_same_seed_same_data_different_seed_different_data():
    first, again, other = gen.generate(800, 3), gen.generate(800, 3), gen.generate(800, 4)
    for name in ("transactions", "campaigns", "truth", "products"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(again, name))
    assert first.meta == again.meta
    assert not first.transactions.equals(other.transactions)
    assert not first.truth["purchase_rate_per_day"].equals(other.truth["purchase_rate_per_day"])


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        gen.generate(0, 1)
    # Acquisition may continue after the campaign (continuous acquisition), but not beyond the window.
    with pytest.raises(ValueError):
        gen.generate(10, 1, params=gen.GeneratorParams(acquisition_share=1.2, campaign_at=0.75))
    with pytest.raises(ValueError):
        gen.generate(10, 1, params=gen.GeneratorParams(acquisition_share=0.0))


def test_products_catalogue(data):
    products = data.products
    assert len(products) == len(gen.CATEGORIES) * gen.PRODUCTS_PER_CATEGORY
    assert products["sku"].is_unique and products["description"].notna().all()
    assert (products["unit_price"] > 0).all()
    assert set(data.transactions["sku"]) <= set(products["sku"])
    # A product's description, category and price are the same on every line.
    assert (data.transactions.groupby("sku")[["description", "category", "unit_price"]].nunique() == 1).all().all()


def test_one_hundred_thousand_customers_well_under_a_minute():
    began = time.perf_counter()
    big = gen.generate(100_000, 1)
    elapsed = time.perf_counter() - began
    assert big.truth.shape[0] == 100_000
    assert elapsed < 30, f"100,000 customers took {elapsed:.1f} s"


# --- Truth ↔ data: purchase and dropout process --------------------------------------------------


def test_every_customer_is_in_the_truth_and_has_transactions(data):
    assert set(data.transactions["customer_id"]) == set(data.truth["customer_id"])
    assert data.truth["customer_id"].is_unique and len(data.truth) == N
    assert set(data.campaigns["customer_id"]) == set(data.truth["customer_id"])


def test_nothing_happens_after_dropout_or_outside_the_window(data):
    tx, truth = data.transactions, data.truth.set_index("customer_id")
    cutoff = pd.Timestamp(data.meta["cutoff"])
    assert tx["invoiced_at"].min() >= pd.Timestamp(data.meta["start"])
    assert tx["invoiced_at"].max() < cutoff
    last = tx.groupby("customer_id")["invoiced_at"].max()
    dropout = truth["dropout_at"].reindex(last.index)
    gone = dropout.notna()
    assert gone.sum() > 0.2 * N  # a real share of customers has left
    assert (last[gone] <= dropout[gone]).all()  # no line, not even a return, after dropout
    assert (truth["alive_at_cutoff"] == truth["dropout_at"].isna()).all()
    assert (truth.loc[truth["dropout_at"].notna(), "dropout_at"] < cutoff).all()


def test_dropout_happens_at_a_repeat_purchase_as_in_the_bgnbd(data, purchases, sent_at):
    """BG/NBD: a customer becomes inactive right after a repeat purchase, never at the first one."""
    truth = data.truth.set_index("customer_id")
    natural = truth[truth["dropout_at"].notna() & ~truth["campaign_churned"]]
    last = purchases.groupby("customer_id")["invoiced_at"].max().reindex(natural.index)
    first = purchases.groupby("customer_id")["invoiced_at"].min().reindex(natural.index)
    assert (last == natural["dropout_at"]).all()
    assert (first < natural["dropout_at"]).all()
    # Customers the campaign annoyed away left at the send time.
    churned = truth[truth["campaign_churned"]]
    assert len(churned) > 0 and (churned["dropout_at"] == sent_at).all()


def test_acquisition_is_the_first_purchase(data, purchases):
    first = purchases.groupby("customer_id")["invoiced_at"].min()
    acquired = data.truth.set_index("customer_id")["acquired_at"].reindex(first.index)
    assert (first == acquired).all()
    horizon = pd.Timestamp(data.meta["cutoff"]) - pd.Timestamp(data.meta["start"])
    last_day = (pd.Timestamp(data.meta["start"]) + horizon * gen.GeneratorParams().acquisition_share).normalize()
    assert acquired.max().normalize() <= last_day  # shop hours move times within their day only
    assert acquired.min().normalize() == pd.Timestamp(data.meta["start"])


def test_purchase_counts_follow_the_bgnbd_expectation(data, purchases, sent_at):
    """Before the campaign the process is the pure BG/NBD, whose expected number of repeat purchases
    in t days is E[X(t) | λ, p] = (1 − exp(−λ p t)) / p; the observed counts must add up to it."""
    truth = data.truth.set_index("customer_id")
    exposure = (sent_at - truth["acquired_at"]).dt.total_seconds() / 86400
    lam, p = truth["purchase_rate_per_day"], truth["dropout_prob"]
    expected = (1 - np.exp(-lam * p * exposure)) / p
    observed = truth["frequency_at_send"] - 1  # repeat purchases before send
    assert observed.sum() / expected.sum() == pytest.approx(1.0, abs=0.03)
    assert stats.spearmanr(expected, observed).statistic > 0.6


def test_invoice_totals_match_the_drawn_spend(data, purchases):
    invoices = purchases.groupby(["customer_id", "invoice"], as_index=False)["amount"].sum()
    mean_spend = data.truth.set_index("customer_id")["mean_spend"]
    invoices["expected"] = invoices["customer_id"].map(mean_spend)
    # Unbiased up to the at-least-one-item rule for small spends on dear products (about +3 %).
    assert invoices["amount"].sum() / invoices["expected"].sum() == pytest.approx(1.0, abs=0.05)
    per_customer = invoices.groupby("customer_id")[["amount", "expected"]].mean()
    busy = invoices.groupby("customer_id").size() >= 5
    assert stats.spearmanr(per_customer.loc[busy, "amount"], per_customer.loc[busy, "expected"]).statistic > 0.7
    assert (purchases.groupby("invoice").size() > 1).mean() > 0.3  # baskets, not single lines


def test_returns_are_partial_and_follow_their_invoice(data):
    tx = data.transactions
    returns = tx[tx["quantity"] < 0]
    assert 0 < len(returns) < 0.05 * len(tx)
    original = (
        tx[tx["quantity"] > 0]
        .groupby(["invoice", "sku", "customer_id"], as_index=False)
        .agg(bought=("quantity", "sum"), bought_at=("invoiced_at", "first"))
    )
    joined = returns.assign(origin=returns["invoice"].str.slice(1)).merge(
        original, left_on=["origin", "sku", "customer_id"], right_on=["invoice", "sku", "customer_id"], how="left"
    )
    assert len(joined) == len(returns)
    assert joined["bought"].notna().all()
    assert (-joined["quantity"] <= joined["bought"]).all()
    assert (joined["invoiced_at"] > joined["bought_at"]).all()


def test_bgnbd_and_gamma_gamma_fits_recover_the_generating_parameters(data, purchases, sent_at):
    """The point of the truth: a CLTV fit on the data (before the campaign) finds the parameters."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.utils import summary_data_from_transaction_data

    days = purchases[purchases["invoiced_at"] < sent_at.normalize()].assign(
        day=lambda f: f["invoiced_at"].dt.normalize()
    )
    summary = summary_data_from_transaction_data(
        days,
        "customer_id",
        "day",
        monetary_value_col="amount",
        observation_period_end=sent_at.normalize() - pd.Timedelta(days=1),
        freq="D",
    )
    params = data.meta["params"]
    bg = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    for name in ("r", "alpha", "a", "b"):
        assert bg.params_[name] == pytest.approx(params[name], rel=0.15), name
    repeat = summary[summary["frequency"] > 0]
    gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
    assert gg.params_["p"] == pytest.approx(params["p"], rel=0.15)
    implied_mean = gg.params_["p"] * gg.params_["v"] / (gg.params_["q"] - 1)
    assert implied_mean == pytest.approx(params["p"] * params["gamma"] / (params["q"] - 1), rel=0.05)


# --- Taste ---------------------------------------------------------------------------------------


def test_taste_cluster_drives_categories(data, purchases):
    cluster = data.truth.set_index("customer_id")["taste_cluster"]
    lines = purchases.assign(cluster=purchases["customer_id"].map(cluster))
    shares = pd.crosstab(lines["cluster"], lines["category"], normalize="index")[list(gen.CATEGORIES)]
    prefs = gen.cluster_preferences()
    assert np.corrcoef(shares.to_numpy().ravel(), prefs.ravel())[0, 1] > 0.95
    for k, c in enumerate(gen.TASTE_CLUSTERS):
        assert shares.columns[shares.loc[k].to_numpy().argmax()] == c.primary
    # Per customer too: the primary category's share is highest among the cluster's own members.
    per_customer = pd.crosstab(lines["customer_id"], lines["category"], normalize="index")
    busy = lines.groupby("customer_id").size() >= 8
    per_customer = per_customer[busy.reindex(per_customer.index)]
    home = per_customer["Home & Kitchen"]
    regulars = cluster.reindex(home.index) == 0
    assert home[regulars].mean() > 2 * home[~regulars & (cluster.reindex(home.index) != 2)].mean()


def test_taste_clusters_differ_in_value_as_documented(data):
    truth = data.truth
    assert truth["taste_cluster"].value_counts().min() > 0.08 * N  # every cluster is a real segment
    by_cluster = truth.groupby("taste_name")[["purchase_rate_per_day", "mean_spend"]].median()
    overall = truth[["purchase_rate_per_day", "mean_spend"]].median()
    for c in gen.TASTE_CLUSTERS:
        row = by_cluster.loc[c.name]
        if abs(c.frequency_loading) >= 0.6:
            assert np.sign(row["purchase_rate_per_day"] - overall["purchase_rate_per_day"]) == np.sign(
                c.frequency_loading
            ), c.name
        if abs(c.spend_loading) >= 0.6:
            assert np.sign(row["mean_spend"] - overall["mean_spend"]) == np.sign(c.spend_loading), c.name
    # The marginals stay exactly as the BG/NBD and Gamma-Gamma say (tilting only sorts customers).
    params = data.meta["params"]
    assert truth["purchase_rate_per_day"].mean() == pytest.approx(params["r"] / params["alpha"], rel=0.05)
    assert truth["dropout_prob"].mean() == pytest.approx(params["a"] / (params["a"] + params["b"]), rel=0.05)


# --- Campaign ------------------------------------------------------------------------------------


def test_campaign_is_sent_three_quarters_through_and_everyone_is_in_it(data, sent_at):
    start, cutoff = pd.Timestamp(data.meta["start"]), pd.Timestamp(data.meta["cutoff"])
    assert (data.campaigns["sent_at"] == sent_at).all()
    assert (sent_at - start) / (cutoff - start) == pytest.approx(0.75, abs=0.01)
    assert data.campaigns["campaign"].nunique() == 1
    assert (data.truth["acquired_at"] < sent_at).all()


def test_assignment_is_random_and_balanced(frame):
    treated = frame["treated"].astype(bool)
    share = treated.mean()
    assert abs(share - 0.5) < 3.5 * np.sqrt(0.25 / N)
    for column in ("frequency_at_send", "recency_at_send_days", "purchase_rate_per_day", "mean_spend"):
        x1, x0 = frame.loc[treated, column], frame.loc[~treated, column]
        smd = (x1.mean() - x0.mean()) / np.sqrt((x1.var() + x0.var()) / 2)
        assert abs(smd) < 0.05, column
    table = pd.crosstab(frame["taste_cluster"], treated)
    assert stats.chi2_contingency(table).pvalue > 0.001


def test_conversion_is_a_purchase_in_the_outcome_window(data, purchases, frame, sent_at):
    window_end = sent_at + pd.Timedelta(days=data.meta["campaign"]["outcome_window_days"])
    inside = purchases[(purchases["invoiced_at"] >= sent_at) & (purchases["invoiced_at"] < window_end)]
    revenue = inside.groupby("customer_id")["amount"].sum().round(2)
    indexed = frame.set_index("customer_id")
    assert set(indexed.index[indexed["converted"] == 1]) == set(revenue.index)
    assert indexed.loc[revenue.index, "revenue"].to_numpy() == pytest.approx(revenue.to_numpy(), abs=0.006)
    assert (indexed.loc[indexed["converted"] == 0, "revenue"] == 0).all()
    # Nobody gone before the send converts.
    assert (indexed.loc[~indexed["alive_at_send"], "converted"] == 0).all()


def test_true_uplift_is_heterogeneous_with_sleeping_dogs(frame):
    tau = frame["true_uplift"]
    assert (tau < 0).mean() > 0.03 and (tau > 0).mean() > 0.3
    assert ((tau >= -frame["baseline_conversion"] - 1e-12) & (tau <= 1 - frame["baseline_conversion"] + 1e-12)).all()
    assert (tau[~frame["alive_at_send"]] == 0).all()
    effect = gen.GeneratorParams().treatment
    dogs = (frame["recency_at_send_days"] <= effect.sleeping_dog_recency_days) & (
        frame["frequency_at_send"] >= effect.sleeping_dog_frequency
    )
    assert (tau[dogs & frame["alive_at_send"]] < 0).mean() > 0.9
    assert (tau[~dogs] >= 0).mean() > 0.95


def test_difference_in_conversion_estimates_the_mean_true_uplift(frame):
    treated = frame["treated"].astype(bool)
    y1, y0 = frame.loc[treated, "converted"], frame.loc[~treated, "converted"]
    estimate = y1.mean() - y0.mean()
    se = np.sqrt(y1.var() / len(y1) + y0.var() / len(y0))
    assert abs(estimate - frame["true_uplift"].mean()) < 4 * se
    # Within the sleeping dogs the offer hurts: the observed effect is negative there too.
    dogs = frame["true_uplift"] < -0.1
    d1, d0 = frame.loc[dogs & treated, "converted"], frame.loc[dogs & ~treated, "converted"]
    assert d1.mean() - d0.mean() < 0
    assert abs((d1.mean() - d0.mean()) - frame.loc[dogs, "true_uplift"].mean()) < 4 * np.sqrt(
        d1.var() / len(d1) + d0.var() / len(d0)
    )


def test_baseline_conversion_is_calibrated_on_the_control_group(frame):
    control = frame[frame["treated"] == 0]
    bins = pd.cut(control["baseline_conversion"], [-0.01, 0.0, 0.1, 0.3, 0.6, 1.0])
    observed = control.groupby(bins, observed=True)["converted"].mean()
    predicted = control.groupby(bins, observed=True)["baseline_conversion"].mean()
    assert observed.iloc[0] == 0  # customers already gone never convert
    assert (observed - predicted).abs().max() < 0.04


def test_dates_are_configurable():
    small = gen.generate(200, 2, start=date(2020, 3, 1), end=date(2021, 2, 28))
    assert small.transactions["invoiced_at"].min() >= pd.Timestamp("2020-03-01")
    assert small.transactions["invoiced_at"].max() < pd.Timestamp("2021-03-01")
    assert small.meta["cutoff"] == "2021-03-01 00:00:00"
