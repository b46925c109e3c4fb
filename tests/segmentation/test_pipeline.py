"""The pure Segmentation pipeline: RFM, scores, segments, K-Means, names and statistics."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, silhouette_score

from segmentation import pipeline
from segmentation.pipeline import (
    GONE_LABEL,
    NEW_LABEL,
    RFMTransform,
    SegmentationError,
    cluster_name,
    cluster_profiles,
    cluster_rfm,
    group_stats,
    migration_matrix,
    pareto_curve,
    pareto_share_at,
    quintile_scores,
    rf_grid,
    rfm_table,
    score_rfm,
    search_k,
)
from segmentation.segment_map import SEGMENT_NAMES
from tests.segmentation import PLANTED_GROUPS, planted_transactions

ARI_FLOOR = 0.8  # planted groups must be recovered at least this well (observed ≈ 0.95)


def tx(rows: list[tuple]) -> pd.DataFrame:
    """Transactions from (customer_id, invoice, 'YYYY-MM-DD HH:MM', amount, is_return) tuples."""
    frame = pd.DataFrame(rows, columns=["customer_id", "invoice", "invoiced_at", "amount", "is_return"])
    frame["invoiced_at"] = pd.to_datetime(frame["invoiced_at"], utc=True)
    return frame


def rfm_frame(recency, frequency, monetary) -> pd.DataFrame:
    n = len(recency)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "recency_days": np.asarray(recency, dtype=np.int64),
            "frequency": np.asarray(frequency, dtype=np.int64),
            "monetary": np.asarray(monetary, dtype=np.float64),
        }
    )


@pytest.fixture(scope="module")
def planted():
    transactions, truth = planted_transactions(1200, seed=0)
    rfm = rfm_table(transactions)
    return transactions, truth, rfm


@pytest.fixture(scope="module")
def planted_clustering(planted):
    _, _, rfm = planted
    return cluster_rfm(rfm, random_state=0)


# ---------------------------------------------------------------------------------------------
# RFM table
# ---------------------------------------------------------------------------------------------


def test_rfm_table_hand_computed():
    transactions = tx(
        [
            ("a", "I1", "2024-03-01 10:00", 10.0, False),
            ("a", "I1", "2024-03-01 10:00", 5.0, False),  # second line of the same invoice
            ("a", "I2", "2024-03-10 09:00", 20.0, False),
            ("a", "C1", "2024-03-11 12:00", -4.0, True),  # return: reduces revenue, not a purchase
            ("b", "I3", "2024-03-14 23:59", 7.5, False),
            ("c", "C2", "2024-03-12 08:00", -30.0, True),  # only returns: excluded
            (None, "I4", "2024-03-13 08:00", 99.0, False),  # no customer: ignored
        ]
    )
    original = transactions.copy()
    rfm = rfm_table(transactions)
    pd.testing.assert_frame_equal(transactions, original)  # input untouched
    assert list(rfm.columns) == list(pipeline.RFM_COLUMNS)
    assert rfm.attrs["cutoff"] == pd.Timestamp("2024-03-15", tz="UTC")  # day after the last transaction
    assert list(rfm["customer_id"]) == ["a", "b"]
    a, b = rfm.iloc[0], rfm.iloc[1]
    assert (a.recency_days, a.frequency, a.monetary) == (5, 2, 31.0)
    assert (b.recency_days, b.frequency, b.monetary) == (1, 1, 7.5)
    assert a.first_purchase == pd.Timestamp("2024-03-01 10:00", tz="UTC")
    assert a.last_purchase == pd.Timestamp("2024-03-10 09:00", tz="UTC")
    assert rfm["recency_days"].dtype == np.int64 and rfm["frequency"].dtype == np.int64
    assert str(rfm["last_purchase"].dtype) == "datetime64[ns, UTC]"


def test_rfm_table_explicit_cutoff_excludes_later_rows():
    transactions = tx(
        [
            (1, 100, "2024-01-01 12:00", 50.0, False),
            (1, 101, "2024-02-01 12:00", 50.0, False),
            (2, 102, "2024-02-20 12:00", 10.0, False),  # after the cut-off: customer 2 does not exist yet
        ]
    )
    rfm = rfm_table(transactions, cutoff="2024-02-10")
    assert list(rfm["customer_id"]) == [1]
    assert rfm.loc[0, "recency_days"] == 9
    assert rfm.loc[0, "frequency"] == 2
    # A time of day is dropped: the cut-off is the start of that calendar day.
    same = rfm_table(transactions, cutoff=pd.Timestamp("2024-02-10 17:45", tz="UTC"))
    pd.testing.assert_frame_equal(rfm, same)
    # A purchase on the cut-off day itself is not before the cut-off.
    assert rfm_table(transactions, cutoff="2024-02-01").loc[0, "frequency"] == 1


def test_returns_reduce_revenue_whatever_their_sign_and_can_make_it_negative():
    positive_returns = tx(
        [
            (1, "A", "2024-01-01 00:00", 100.0, False),
            (1, "R", "2024-01-02 00:00", 30.0, True),  # a source that stores returns as positive amounts
            (2, "B", "2024-01-01 00:00", 10.0, False),
            (2, "S", "2024-01-02 00:00", -25.0, True),  # returns of goods bought before the data window
        ]
    )
    rfm = rfm_table(positive_returns)
    assert rfm["monetary"].tolist() == [70.0, -15.0]
    assert rfm["frequency"].tolist() == [1, 1]


@pytest.mark.parametrize(
    "ids",
    [
        [17850.0, np.nan, 13047.0, 17850.0, 13047.0],  # Online Retail: float ids with blanks
        [10**15, 7, 10**15, 7, 3],  # sparse integer ids (hashing path)
        ["u-2", "u-1", "u-2", None, "u-1"],  # strings
    ],
)
def test_customer_id_encodings_agree_with_pandas(ids):
    transactions = pd.DataFrame(
        {
            "customer_id": ids,
            "invoice": ["A", "B", "C", "D", "E"],
            "invoiced_at": pd.to_datetime(
                ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"], utc=True
            ),
            "amount": [1.0, 2.0, 4.0, 8.0, 16.0],
            "is_return": [False, False, False, False, False],
        }
    )
    rfm = rfm_table(transactions)
    expected = transactions.dropna(subset=["customer_id"]).groupby("customer_id")["amount"].sum()
    assert rfm["customer_id"].tolist() == expected.index.tolist()
    assert rfm["monetary"].tolist() == expected.tolist()


def test_an_invoice_shared_by_two_customers_counts_once_for_each():
    transactions = tx(
        [
            (1, "X", "2024-01-01 10:00", 5.0, False),
            (2, "X", "2024-01-01 10:00", 5.0, False),
            (1, "X", "2024-01-01 10:00", 5.0, False),
            (1, "Y", "2024-01-02 10:00", 5.0, False),
        ]
    )
    assert rfm_table(transactions)["frequency"].tolist() == [2, 1]


def test_naive_timestamps_are_read_as_utc():
    aware = tx([(1, 1, "2024-05-01 10:00", 1.0, False)])
    naive = aware.assign(invoiced_at=aware["invoiced_at"].dt.tz_localize(None))
    pd.testing.assert_frame_equal(rfm_table(aware), rfm_table(naive))


def test_rfm_table_errors_are_user_facing():
    with pytest.raises(SegmentationError, match="missing the column"):
        rfm_table(pd.DataFrame({"customer_id": [1]}))
    empty = tx([])
    empty["invoiced_at"] = pd.to_datetime(empty["invoiced_at"], utc=True)
    with pytest.raises(SegmentationError, match="no transactions"):
        rfm_table(empty)
    only_returns = tx([(1, "C", "2024-01-01 00:00", -5.0, True)])
    with pytest.raises(SegmentationError, match="No customer made a purchase"):
        rfm_table(only_returns)
    with pytest.raises(SegmentationError, match="No customer made a purchase before the cut-off 2023-01-01"):
        rfm_table(tx([(1, "A", "2024-01-01 00:00", 5.0, False)]), cutoff="2023-01-01")
    with pytest.raises(SegmentationError, match="not a date"):
        rfm_table(tx([(1, "A", "2024-01-01 00:00", 5.0, False)]), cutoff="yesterday-ish")
    assert issubclass(SegmentationError, ValueError)


def test_rfm_table_matches_a_naive_groupby(planted):
    transactions, _, rfm = planted
    cutoff = rfm.attrs["cutoff"]
    purchases = transactions[~transactions["is_return"]]
    g = purchases.groupby("customer_id")
    expected_recency = (cutoff - g["invoiced_at"].max().dt.floor("D")).dt.days
    assert (rfm.set_index("customer_id")["recency_days"] == expected_recency).all()
    assert (rfm.set_index("customer_id")["frequency"] == g["invoice"].nunique()).all()
    net = transactions["amount"].where(~transactions["is_return"], -transactions["amount"].abs())
    expected_monetary = net.groupby(transactions["customer_id"]).sum()
    np.testing.assert_allclose(rfm.set_index("customer_id")["monetary"], expected_monetary.loc[rfm["customer_id"]])


# ---------------------------------------------------------------------------------------------
# Quintile scores and named segments
# ---------------------------------------------------------------------------------------------


def _assert_monotone(values: np.ndarray, scores: np.ndarray, *, reverse: bool = False) -> None:
    order = np.argsort(-values if reverse else values, kind="stable")
    v, s = (-values if reverse else values)[order], scores[order]
    assert (np.diff(s.astype(int)) >= 0).all(), "scores must not decrease as the value improves"
    same = np.diff(v) == 0
    assert (np.diff(s.astype(int))[same] == 0).all(), "equal values must get equal scores"


@pytest.mark.parametrize("seed", range(25))
def test_scores_are_monotone_and_tie_consistent_on_random_data(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    kind = seed % 4
    if kind == 0:  # continuous
        values = rng.lognormal(3, 1, n)
    elif kind == 1:  # heavy ties, like frequency
        values = 1 + rng.geometric(0.6, n).astype(float)
    elif kind == 2:  # a few distinct values only
        values = rng.choice([0.0, 5.0, 5.0, 5.0, 9.0], n)
    else:  # ties plus negative values (net refunds)
        values = np.round(rng.normal(0, 3, n))
    for reverse in (False, True):
        scores = quintile_scores(values, reverse=reverse)
        assert scores.dtype == np.int8 and scores.shape == (n,)
        assert scores.min() >= 1 and scores.max() <= 5
        _assert_monotone(values, scores, reverse=reverse)


def test_distinct_values_fill_the_quintiles_evenly():
    scores = quintile_scores(np.arange(1000.0))
    assert np.bincount(scores, minlength=6)[1:].tolist() == [200] * 5
    assert quintile_scores(np.arange(5.0)).tolist() == [1, 2, 3, 4, 5]
    assert quintile_scores(np.arange(5.0), reverse=True).tolist() == [5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([42.0], [3]),
        ([1.0, 2.0], [2, 4]),
        ([1.0, 2.0, 3.0, 4.0], [1, 2, 4, 5]),
        ([7.0, 7.0, 7.0, 7.0, 7.0, 7.0], [3] * 6),
        ([1.0, 1.0, 1.0, 1.0, 9.0], [3, 3, 3, 3, 5]),  # the tie block sits at p = 0.4
    ],
)
def test_tiny_and_degenerate_score_inputs(values, expected):
    assert quintile_scores(values).tolist() == expected
    assert pipeline.NEUTRAL_SCORE == 3


def test_missing_values_cannot_be_scored():
    with pytest.raises(SegmentationError, match="missing"):
        quintile_scores([1.0, np.nan])


def test_every_customer_gets_exactly_one_named_segment(planted):
    _, _, rfm = planted
    scored = score_rfm(rfm)
    assert len(scored) == len(rfm)
    assert isinstance(scored["segment"].dtype, pd.CategoricalDtype)
    assert list(scored["segment"].cat.categories) == list(SEGMENT_NAMES)
    assert scored["segment"].notna().all()
    assert scored["rfm_code"].str.fullmatch(r"[1-5]{3}").all()
    assert (scored["fm_score"] == (scored["f_score"].astype(int) + scored["m_score"] + 1) // 2).all()
    # Recent customers score high on R.
    assert scored.loc[scored["recency_days"].idxmin(), "r_score"] == 5
    assert scored.loc[scored["monetary"].idxmax(), "m_score"] == 5


@pytest.mark.parametrize("n", [1, 2, 4])
def test_score_rfm_on_tiny_tables(n):
    rfm = rfm_frame(np.arange(1, n + 1) * 10, np.arange(1, n + 1), np.arange(1, n + 1) * 100.0)
    scored = score_rfm(rfm)
    assert len(scored) == n and scored["segment"].notna().all()
    if n == 1:
        assert scored[["r_score", "f_score", "m_score"]].iloc[0].tolist() == [3, 3, 3]
        assert scored["segment"].iloc[0] == "Need Attention"


def test_score_rfm_all_equal_customers_get_the_neutral_cell():
    scored = score_rfm(rfm_frame([30] * 8, [2] * 8, [50.0] * 8))
    assert (scored[["r_score", "f_score", "m_score"]] == 3).all().all()
    assert (scored["segment"] == "Need Attention").all()


def test_score_rfm_rejects_empty_and_incomplete_tables():
    with pytest.raises(SegmentationError, match="no customers"):
        score_rfm(rfm_frame([], [], []))
    with pytest.raises(SegmentationError, match="missing the column"):
        score_rfm(pd.DataFrame({"recency_days": [1]}))
    bad = rfm_frame([1, 2], [1, 1], [5.0, np.nan])
    with pytest.raises(SegmentationError, match="missing R, F or M"):
        score_rfm(bad)


# ---------------------------------------------------------------------------------------------
# K-Means
# ---------------------------------------------------------------------------------------------


def test_transform_is_log1p_then_standardise_with_monetary_clipped():
    rfm = rfm_frame([1, 10, 100], [1, 2, 3], [-50.0, 0.0, 99.0])
    t = RFMTransform.fit(rfm)
    z = t.transform(rfm)
    logged = np.log1p(np.array([[1, 1, 0], [10, 2, 0], [100, 3, 99]], dtype=float))
    np.testing.assert_allclose(z, (logged - logged.mean(0)) / logged.std(0))
    np.testing.assert_allclose(t.inverse(z), np.array([[1, 1, 0], [10, 2, 0], [100, 3, 99]], dtype=float), atol=1e-9)
    constant = RFMTransform.fit(rfm_frame([5, 5, 5], [1, 2, 3], [1.0, 2.0, 3.0]))
    assert constant.scale[0] == 1.0  # a constant column is left unscaled (all zeros), no division by zero


def test_planted_groups_are_recovered_and_k_is_found(planted, planted_clustering):
    _, truth, rfm = planted
    result = planted_clustering
    assert result.search is not None
    assert result.k == len(PLANTED_GROUPS) == result.search.chosen_k
    ari = adjusted_rand_score(truth.loc[rfm["customer_id"]].to_numpy(), result.labels)
    assert ari >= ARI_FLOOR, f"adjusted Rand index {ari:.3f} below {ARI_FLOOR}"
    assert "k = 4 chosen automatically" in result.explanation
    assert result.search.k_values == tuple(range(2, 11))
    assert len(result.search.inertia) == 9
    assert all(a > b for a, b in zip(result.search.inertia, result.search.inertia[1:], strict=False))


def test_cluster_ids_are_ordered_by_descending_mean_monetary(planted, planted_clustering):
    _, _, rfm = planted
    means = rfm["monetary"].groupby(planted_clustering.labels).mean()
    assert list(means.index) == list(range(planted_clustering.k))
    assert means.is_monotonic_decreasing
    assert planted_clustering.profiles["mean_monetary"].is_monotonic_decreasing


def test_clustering_is_deterministic(planted, planted_clustering):
    _, _, rfm = planted
    again = cluster_rfm(rfm, random_state=0)
    np.testing.assert_array_equal(again.labels, planted_clustering.labels)
    assert again.names == planted_clustering.names
    assert (
        again.search.table().drop(columns="seconds").equals(planted_clustering.search.table().drop(columns="seconds"))
    )


def test_cluster_names_are_unique_and_describe_the_planted_groups(planted, planted_clustering):
    names = planted_clustering.names
    assert len(set(names)) == len(names)
    profiles = planted_clustering.profiles
    # The top-value cluster is the recent, frequent, big-spending planted group.
    top = profiles.loc[0]
    assert (top["r_level"], top["f_level"], top["m_level"]) == ("high", "high", "high")
    assert top["name"] == "High-value loyal"
    # The recent one-or-two-purchase, low-spend group is recognised as new.
    assert "New low-spend" in names
    assert any(name.startswith("Lapsed") for name in names)


def test_cluster_names_are_stable_when_two_percent_of_customers_are_dropped(planted, planted_clustering):
    _, _, rfm = planted
    rng = np.random.default_rng(123)
    keep = rng.random(len(rfm)) >= 0.02
    perturbed = cluster_rfm(rfm.loc[keep].reset_index(drop=True), random_state=0)
    assert perturbed.k == planted_clustering.k
    # Match clusters by their shared customers (Hungarian assignment on the overlap counts).
    full = planted_clustering.labels[keep]
    overlap = pd.crosstab(full, perturbed.labels).to_numpy()
    rows, cols = linear_sum_assignment(-overlap)
    for r, c in zip(rows, cols, strict=True):
        assert planted_clustering.names[r] == perturbed.names[c]
    # Value ordering is stable too: matched clusters keep their ids.
    assert (rows == cols).all()


def test_duplicate_base_names_get_rank_suffixes():
    # Six clusters of almost the same customers: several share levels, so suffixes are needed.
    rng = np.random.default_rng(5)
    n = 600
    rfm = rfm_frame(rng.integers(1, 400, n), rng.integers(1, 10, n), rng.lognormal(4, 1, n))
    labels = np.repeat(np.arange(6), n // 6)  # arbitrary labels → similar medians
    profiles = cluster_profiles(rfm, labels)
    assert profiles["name"].is_unique
    assert profiles["name"].str.contains(" #1").any()
    base = profiles["name"].str.replace(r" #\d+$", "", regex=True)
    suffixed = profiles[profiles["name"].str.contains("#")]
    for _, group in suffixed.groupby(base[suffixed.index]):
        assert sorted(group["name"].str.extract(r"#(\d+)$")[0].astype(int)) == list(range(1, len(group) + 1))


def test_all_27_level_combinations_have_distinct_names():
    names = {
        cluster_name(r, f, m)
        for r in ("low", "mid", "high")
        for f in ("low", "mid", "high")
        for m in ("low", "mid", "high")
    }
    assert len(names) == 27


def test_one_time_buyers_are_low_frequency_even_when_they_are_the_majority():
    freq = np.r_[np.ones(700), np.full(200, 2), np.full(100, 5)]
    rfm = rfm_frame(np.full(1000, 30), freq, np.full(1000, 10.0))
    labels = np.r_[np.zeros(700, int), np.ones(300, int)]
    profiles = cluster_profiles(rfm, labels)
    assert profiles.loc[0, "f_level"] == "low"  # mid-rank percentile 0.35, but it is the minimum
    assert profiles.loc[0, "r_level"] == "mid" and profiles.loc[0, "m_level"] == "mid"  # constant dimensions


def test_override_k(planted):
    _, _, rfm = planted
    result = cluster_rfm(rfm, k=3)
    assert result.k == 3 and len(np.unique(result.labels)) == 3
    assert result.explanation.startswith("k = 3 set by the user.")
    assert "k = 4" in result.explanation
    fast = cluster_rfm(rfm, k=3, search=False)
    assert fast.search is None
    np.testing.assert_array_equal(fast.labels, result.labels)
    beyond = cluster_rfm(rfm, k=12, search=False)  # outside the default search range is allowed
    assert beyond.k == 12 and len(set(beyond.names)) == 12


def test_predict_assigns_training_customers_to_their_cluster(planted, planted_clustering):
    _, _, rfm = planted
    np.testing.assert_array_equal(planted_clustering.predict(rfm), planted_clustering.labels)
    assignments = planted_clustering.assignments(rfm["customer_id"])
    assert len(assignments) == len(rfm)
    assert (
        assignments["cluster_name"].astype(str) == np.asarray(planted_clustering.names)[assignments["cluster"]]
    ).all()
    json.dumps(planted_clustering.to_dict())


def test_minibatch_path_recovers_the_planted_groups_too(planted):
    _, truth, rfm = planted
    result = cluster_rfm(rfm, minibatch_threshold=100, k_values=range(2, 7))
    assert result.search.algorithm.startswith("MiniBatchKMeans")
    assert result.k == 4
    assert adjusted_rand_score(truth.loc[rfm["customer_id"]].to_numpy(), result.labels) >= ARI_FLOOR


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_customers_to_cluster(n):
    rfm = rfm_frame(np.arange(n) + 1, np.arange(n) + 1, np.arange(n) + 1.0)
    with pytest.raises(SegmentationError, match="customer"):
        cluster_rfm(rfm)


def test_four_customers_cluster_into_a_sensible_small_k():
    rfm = rfm_frame([1, 2, 300, 320], [10, 12, 1, 1], [900.0, 1000.0, 10.0, 12.0])
    result = cluster_rfm(rfm)
    assert result.search.k_values == (2, 3)  # k ≤ n − 1
    assert result.k == 2
    assert result.labels.tolist() == [0, 0, 1, 1]
    assert len(set(result.names)) == 2


def test_identical_customers_cannot_be_clustered():
    rfm = rfm_frame([30] * 50, [3] * 50, [120.0] * 50)
    with pytest.raises(SegmentationError, match="same recency, frequency and monetary"):
        cluster_rfm(rfm)
    # Scores still work: everybody is neutral.
    assert (score_rfm(rfm)["segment"] == "Need Attention").all()


def test_few_distinct_profiles_limit_k():
    rfm = rfm_frame(
        [1] * 20 + [200] * 20 + [90] * 20, [9] * 20 + [1] * 20 + [3] * 20, [500.0] * 20 + [5.0] * 20 + [50.0] * 20
    )
    result = cluster_rfm(rfm)
    assert result.search.k_values == (2, 3)
    assert "support at most k = 3" in result.explanation
    with pytest.raises(SegmentationError, match="support at most k = 3"):
        cluster_rfm(rfm, k=5, search=False)
    with pytest.raises(SegmentationError, match="at least 2"):
        cluster_rfm(rfm, k=1)


def test_sampled_silhouette_matches_the_full_silhouette():
    transactions, _ = planted_transactions(8000, seed=3)
    rfm = rfm_table(transactions)
    x = RFMTransform.fit(rfm).transform(rfm)
    search = search_k(x, k_values=(3, 4, 5), silhouette_sample=2500, random_state=0)
    assert search.sample_size == 2500
    for k, sampled in zip(search.k_values, search.silhouette, strict=True):
        full = silhouette_score(x, search.labels[k])
        assert abs(sampled - full) < 0.02, (k, sampled, full)


def test_near_ties_go_to_the_smaller_k():
    # the tie rule itself, without the marketer's floor (min_k=2); the floor is tested below
    chosen, text = pipeline._choose_k([2, 3, 4, 5], [0.50, 0.55, 0.555, 0.40], tolerance=0.01, min_k=2)
    assert chosen == 3
    assert "within 0.01 of the best (0.555 at k = 4)" in text
    chosen, text = pipeline._choose_k([2, 3, 4], [0.3, 0.6, 0.4], tolerance=0.01, min_k=2)
    assert chosen == 3 and "highest silhouette (0.600)" in text


def test_marketers_floor_of_four_groups_unless_fewer_are_clearly_better():
    # k = 2 has the best silhouette but not clearly (margin < 0.10): the floor holds, and says why
    chosen, text = pipeline._choose_k([2, 3, 4, 5, 6], [0.45, 0.40, 0.38, 0.36, 0.30], tolerance=0.01)
    assert chosen == 4 and "too coarse for campaigns" in text and "0.450 at k = 2" in text
    # k = 2 clearly better (0.62 vs at most 0.40): the data win, and the page says the floor was lifted
    chosen, text = pipeline._choose_k([2, 3, 4, 5], [0.62, 0.50, 0.40, 0.35], tolerance=0.01)
    assert chosen == 2 and "floor of 4 groups was not applied" in text
    # the data support only k ≤ 3: the floor cannot apply
    chosen, text = pipeline._choose_k([2, 3], [0.5, 0.4], tolerance=0.01)
    assert chosen == 2 and "floor of 4 groups was lifted" in text


def test_frequency_min_rank_gives_one_time_buyers_f_1_and_fills_new_and_promising():
    # 60 % bought once: with mid-ranks they would all get F = 2 and nobody F = 1
    freq = np.array([1.0] * 60 + [2.0] * 20 + [3.0] * 10 + [5.0] * 10)
    assert quintile_scores(freq).min() == 2
    scores = quintile_scores(freq, lowest_is_one=True)
    assert set(scores[:60]) == {1} and scores[60] == 4 and scores[-1] == 5
    assert quintile_scores([7.0] * 6, lowest_is_one=True).tolist() == [3] * 6
    assert quintile_scores([4.0], lowest_is_one=True).tolist() == [3]
    assert quintile_scores([1.0, 1.0, 3.0], lowest_is_one=True).tolist() == [1, 1, 5]
    n = 100
    recency = np.r_[np.arange(1, 31), np.arange(200, 270)].astype(float)  # 30 recent, 70 old
    frequency = np.r_[[1.0] * 30, 2 + np.arange(70) % 5].astype(float)  # the recent ones bought once
    monetary = np.r_[np.full(30, 10.0), np.linspace(50, 500, 70)]
    scored = score_rfm(rfm_frame(recency.tolist(), frequency.tolist(), monetary.tolist()))
    assert len(scored) == n and (scored["f_score"].iloc[:30] == 1).all()
    counts = scored["segment"].value_counts()
    assert counts["New"] > 0 and counts["Promising"] > 0


def test_cluster_recency_words_follow_the_calendar():
    # every customer is old: percentiles alone would call the least-old group "recent"
    recency = np.r_[np.full(50, 480.0), np.full(50, 700.0), np.full(50, 20.0)]
    frequency = np.r_[np.full(50, 3.0), np.full(50, 3.0), np.full(50, 3.0)]
    monetary = np.r_[np.full(50, 100.0), np.full(50, 100.0), np.full(50, 100.0)]
    rfm = rfm_frame(recency.tolist(), frequency.tolist(), monetary.tolist())
    profiles = pipeline.cluster_profiles(rfm, np.r_[np.zeros(50), np.ones(50), np.full(50, 2)].astype(int))
    levels = dict(zip(profiles["median_recency_days"], profiles["r_level"], strict=True))
    assert levels[480.0] == "low" and levels[700.0] == "low"  # 16 months lapsed is never "mid recency"
    assert levels[20.0] == "high"
    old_only = rfm_frame([100.0] * 40 + [300.0] * 40, [2.0] * 80, [50.0] * 80)
    profiles = pipeline.cluster_profiles(old_only, np.r_[np.zeros(40), np.ones(40)].astype(int))
    assert set(profiles.loc[profiles["median_recency_days"] == 100.0, "r_level"]) == {"mid"}  # not "recent"


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------


def test_group_stats_for_segments_include_empty_segments(planted):
    _, _, rfm = planted
    scored = score_rfm(rfm)
    stats = group_stats(scored, scored["segment"])
    assert list(stats.index) == list(SEGMENT_NAMES)
    assert stats["customers"].sum() == len(rfm)
    assert stats["customer_share"].sum() == pytest.approx(1.0)
    assert stats["revenue_share"].sum() == pytest.approx(1.0)
    assert stats["revenue"].sum() == pytest.approx(rfm["monetary"].sum())
    champions = scored[scored["segment"] == "Champions"]
    assert stats.loc["Champions", "median_frequency"] == champions["frequency"].median()
    assert stats.loc["Champions", "mean_recency_days"] == pytest.approx(champions["recency_days"].mean())
    few = score_rfm(rfm.head(3))
    assert (group_stats(few, few["segment"])["customers"] == 0).sum() >= 8


def test_pareto_curve_ends_at_one_and_is_concave(planted):
    _, _, rfm = planted
    for max_points in (10_000, 51):
        curve = pareto_curve(rfm["monetary"], max_points=max_points)
        x, y = curve["customer_share"].to_numpy(), curve["revenue_share"].to_numpy()
        assert (x[0], y[0]) == (0.0, 0.0) and (x[-1], y[-1]) == (1.0, 1.0)
        assert len(curve) <= max_points
        assert (np.diff(x) > 0).all() and (np.diff(y) >= -1e-12).all()
        slopes = np.diff(y) / np.diff(x)
        assert (np.diff(slopes) <= 1e-9).all(), "curve must be concave"
        assert y[1:-1].min() >= x[1:-1].min()  # above the diagonal
    assert 0.2 < pareto_share_at(pareto_curve(rfm["monetary"]), 0.2) <= 1.0


def test_pareto_curve_edge_cases():
    curve = pareto_curve(np.array([-5.0, 10.0, 30.0]))
    assert curve["revenue_share"].tolist() == pytest.approx([0.0, 0.75, 1.0, 1.0])
    with pytest.raises(SegmentationError, match="no positive net revenue"):
        pareto_curve(np.array([0.0, -1.0]))
    with pytest.raises(SegmentationError, match="no customers"):
        pareto_curve(np.array([]))


def test_rf_grid_counts_and_revenue(planted):
    _, _, rfm = planted
    scored = score_rfm(rfm)
    grid = rf_grid(scored)
    assert len(grid) == 25
    assert grid["customers"].sum() == len(rfm)
    assert grid["revenue"].sum() == pytest.approx(rfm["monetary"].sum())
    cell = grid[(grid["r_score"] == 5) & (grid["f_score"] == 5)].iloc[0]
    mask = (scored["r_score"] == 5) & (scored["f_score"] == 5)
    assert cell["customers"] == mask.sum()
    assert cell["revenue"] == pytest.approx(scored.loc[mask, "monetary"].sum())


def test_migration_matrix_sums_to_customers_and_tracks_new_and_gone(planted):
    transactions, _, rfm = planted
    now = score_rfm(rfm)
    earlier = score_rfm(rfm_table(transactions, cutoff=rfm.attrs["cutoff"] - pd.Timedelta(days=60)))
    before = pd.Series(earlier["segment"].to_numpy(), index=earlier["customer_id"])
    after = pd.Series(now["segment"].to_numpy(), index=now["customer_id"])
    after = after.drop(after.index[:7])  # pretend 7 customers were erased
    matrix = migration_matrix(before, after)
    union = before.index.union(after.index)
    assert matrix.to_numpy().sum() == len(union)
    assert matrix.index[-1] == NEW_LABEL and matrix.columns[-1] == GONE_LABEL
    assert matrix.loc[NEW_LABEL].sum() == len(after.index.difference(before.index)) > 0  # new customers of 60 days
    assert matrix[GONE_LABEL].sum() == len(before.index.difference(after.index))
    assert matrix.loc[NEW_LABEL, GONE_LABEL] == 0
    stayed = before.index.intersection(after.index)
    champions_stay = ((before.loc[stayed] == "Champions") & (after.loc[stayed] == "Champions")).sum()
    assert matrix.loc["Champions", "Champions"] == champions_stay
    # Segment order follows the map's order.
    order = [s for s in SEGMENT_NAMES if s in matrix.index]
    assert list(matrix.index[:-1]) == order


def test_migration_matrix_for_cluster_names_and_duplicates():
    before = pd.Series(["b", "a", "a"], index=[1, 2, 3])
    after = pd.Series(["a", "c"], index=[2, 4])
    matrix = migration_matrix(before, after)
    assert list(matrix.index) == ["a", "b", "c", NEW_LABEL]  # both axes list every label of either run
    assert list(matrix.columns) == ["a", "b", "c", GONE_LABEL]
    assert matrix.to_numpy().sum() == 4
    assert matrix.loc["a", "a"] == 1 and matrix.loc["a", GONE_LABEL] == 1 and matrix.loc[NEW_LABEL, "c"] == 1
    with pytest.raises(SegmentationError, match="more than once"):
        migration_matrix(pd.Series(["a", "b"], index=[1, 1]), after)
    empty = migration_matrix(pd.Series([], dtype=object), pd.Series([], dtype=object))
    assert empty.to_numpy().sum() == 0


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_a_search_on_a_sample_chooses_the_k_of_a_search_on_every_row(seed):
    transactions, _ = planted_transactions(6000, seed=seed)
    rfm = rfm_table(transactions)
    x = RFMTransform.fit(rfm).transform(rfm)
    ks = range(2, 8)
    everything = search_k(x, ks, silhouette_sample=2500, random_state=0, search_sample=len(x))
    sampled = search_k(x, ks, silhouette_sample=2500, random_state=0, search_sample=2000)
    assert everything.fit_rows == len(x) and sampled.fit_rows == 2000 and not sampled.labels
    assert sampled.chosen_k == everything.chosen_k
    at = list(ks).index(everything.chosen_k)
    assert abs(sampled.silhouette[at] - everything.silhouette[at]) < 0.02
    # inertia is on every row either way; a sample's centres are almost as good as all rows' ones
    assert everything.inertia[at] <= sampled.inertia[at] <= 1.02 * everything.inertia[at]
    # the final model is fitted on every row, whichever way k was found
    result = cluster_rfm(rfm, k_values=ks, random_state=0, search_sample=2000)
    assert result.k == everything.chosen_k and len(result.labels) == len(rfm)
