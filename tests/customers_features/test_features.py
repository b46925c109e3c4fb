"""The shared feature definition: values, point-in-time correctness (no leakage), payload parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rfm_portal.customers.features import (
    ACTIONABLE_FEATURES,
    FEATURE_COLUMNS,
    FEATURE_DOCS,
    FeatureError,
    apply_purchases,
    build_features,
    features_from_payload,
    features_to_payload,
)

CUTOFF = pd.Timestamp("2025-01-01", tz="UTC")


def tx(rows: list[tuple]) -> pd.DataFrame:
    """(customer, invoice, days before cutoff, amount, is_return, category) → transactions frame."""
    return pd.DataFrame({
        "customer_id": [r[0] for r in rows],
        "invoice": [r[1] for r in rows],
        "invoiced_at": [CUTOFF - pd.Timedelta(days=r[2]) for r in rows],
        "amount": [float(r[3]) for r in rows],
        "quantity": [1] * len(rows),
        "is_return": [bool(r[4]) for r in rows],
        "category": [r[5] for r in rows],
    })


BASE = [
    ("A", "1", 200, 50, False, "home"),
    ("A", "1", 200, 30, False, "toys"),   # same invoice, two lines
    ("A", "2", 150, 40, False, "home"),
    ("A", "3", 60, 100, False, ""),       # empty category
    ("A", "R1", 55, -20, True, "home"),   # a return
    ("A", "4", 20, 60, False, "garden"),
    ("B", "5", 300, 10, False, "home"),   # one-off buyer
    ("C", "R9", 10, -5, True, "home"),    # return only: not featurised
]


def test_hand_computed_values():
    f = build_features(tx(BASE), CUTOFF)
    assert list(f.index) == ["A", "B"]
    assert list(f.columns) == list(FEATURE_COLUMNS)
    a = f.loc["A"]
    assert a["recency_days"] == pytest.approx(20)
    assert a["frequency"] == 4
    assert a["monetary"] == pytest.approx(80 + 40 + 100 + 60 - 20)
    assert a["tenure_days"] == pytest.approx(200)
    assert a["avg_order_value"] == pytest.approx(280 / 4)
    gaps = np.array([50.0, 90.0, 40.0])
    assert a["ipt_mean_days"] == pytest.approx(gaps.mean())
    assert a["ipt_std_days"] == pytest.approx(gaps.std())
    assert a["gap_ratio"] == pytest.approx(20 / gaps.mean())
    assert a["purchases_90d"] == 2 and a["spend_90d"] == pytest.approx(160)
    assert a["purchases_trend"] == 2 - 1  # invoice 2 at 150 d is in [90, 180)
    assert a["spend_trend"] == pytest.approx(160 - 40)
    assert a["return_count"] == 1 and a["return_share"] == pytest.approx(20 / 280)
    assert a["category_count"] == 3
    b = f.loc["B"]
    assert b["frequency"] == 1 and b["ipt_mean_days"] == pytest.approx(300) and b["ipt_std_days"] == 0
    assert b["gap_ratio"] == pytest.approx(1.0) and b["purchases_90d"] == 0
    assert not f[list(FEATURE_COLUMNS)].isna().any().any()


def test_every_feature_documented_with_unit_and_kind():
    for name in (*FEATURE_COLUMNS, "p_alive", "country"):
        assert FEATURE_DOCS[name]["unit"] is not None and FEATURE_DOCS[name]["kind"]
    assert {FEATURE_DOCS[f]["kind"] for f in ACTIONABLE_FEATURES} == {"actionable"}
    for never in ("country", "tenure_days", "return_count", "return_share"):
        assert never not in ACTIONABLE_FEATURES and FEATURE_DOCS[never]["kind"] == "not actionable"


def test_future_transaction_does_not_leak():
    before = build_features(tx(BASE), CUTOFF)
    later = [*BASE, ("A", "9", -5, 999, False, "books"), ("B", "10", 0, 999, False, "books")]  # after / at cutoff
    assert_same = pd.testing.assert_frame_equal
    assert_same(build_features(tx(later), CUTOFF), before)
    # the same transaction moved one day before the cut-off changes the features
    moved = [*BASE, ("A", "9", 1, 999, False, "books")]
    changed = build_features(tx(moved), CUTOFF)
    assert changed.loc["A", "recency_days"] == pytest.approx(1)
    assert changed.loc["A", "frequency"] == 5
    assert changed.loc["A", "category_count"] == 4
    assert not changed.loc["A"].equals(before.loc["A"])
    pd.testing.assert_series_equal(changed.loc["B"], before.loc["B"])


def test_customers_table_country_first_seen_and_p_alive():
    customers = pd.DataFrame({
        "customer_id": ["A", "B"], "country": ["France", None],
        "first_seen": [CUTOFF - pd.Timedelta(days=400), CUTOFF + pd.Timedelta(days=3)],  # B's is in the future
        "p_alive": [0.9, 0.2],
    })
    f = build_features(tx(BASE), CUTOFF, customers)
    assert f.loc["A", "tenure_days"] == pytest.approx(400)
    assert f.loc["B", "tenure_days"] == pytest.approx(300)  # a future first_seen is ignored
    assert f.loc["A", "country"] == "France" and f.loc["B", "country"] == ""
    assert f.loc["B", "p_alive"] == pytest.approx(0.2)


def test_nothing_before_cutoff_gives_empty_frame():
    f = build_features(tx(BASE), CUTOFF - pd.Timedelta(days=1000))
    assert f.empty and list(f.columns) == list(FEATURE_COLUMNS)


def test_missing_column_is_a_clear_error():
    with pytest.raises(FeatureError, match="invoice"):
        build_features(tx(BASE).drop(columns="invoice"), CUTOFF)


def test_payload_gives_identical_features():
    customers = pd.DataFrame({"customer_id": ["A", "B"], "country": ["France", "Spain"],
                              "first_seen": [pd.NaT, pd.NaT], "p_alive": [0.7, 0.1]})
    batch = build_features(tx(BASE), CUTOFF, customers)
    online = features_from_payload(features_to_payload(batch))
    pd.testing.assert_frame_equal(online, batch)
    single = features_from_payload(features_to_payload(batch)[0])
    pd.testing.assert_frame_equal(single, batch.iloc[:1])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"frequency": -1}, "≥ 0"),
        ({"frequency": 2.5}, "whole number"),
        ({"frequency": 0}, "frequency must be ≥ 1"),
        ({"return_share": 1.5}, r"\[0, 1\]"),
        ({"recency_days": "soon"}, "must be a number"),
        ({"recency_days": float("nan")}, "finite"),
        ({"monetary": True}, "must be a number"),
        ({"colour": 1}, "unknown field"),
    ],
)
def test_payload_validation(change, message):
    good = features_to_payload(build_features(tx(BASE), CUTOFF))[0]
    with pytest.raises(FeatureError, match=message):
        features_from_payload({**good, **change})


def test_payload_missing_field_and_empty():
    good = features_to_payload(build_features(tx(BASE), CUTOFF))[0]
    del good["tenure_days"]
    with pytest.raises(FeatureError, match=r"missing field.*tenure_days"):
        features_from_payload([good])
    with pytest.raises(FeatureError, match="empty"):
        features_from_payload([])


def test_apply_purchases_matches_rebuilding_from_transactions():
    base = build_features(tx(BASE), CUTOFF)
    for k in (1, 2, 3):
        extra = [(c, f"N{c}{i}", 1e-6, base.loc[c, "avg_order_value"], False, "home")
                 for c in ("A", "B") for i in range(k)]
        rebuilt = build_features(tx(BASE + extra), CUTOFF)
        algebra = apply_purchases(base, k)
        cols = [c for c in FEATURE_COLUMNS if c != "category_count"]
        pd.testing.assert_frame_equal(algebra[cols], rebuilt[cols], check_exact=False, atol=1e-3, rtol=1e-6)


def test_vectorised_on_many_customers():
    rng = np.random.default_rng(0)
    n = 200_000
    frame = pd.DataFrame({
        "customer_id": rng.integers(0, 50_000, n).astype(str),
        "invoice": np.arange(n).astype(str),
        "invoiced_at": CUTOFF - pd.to_timedelta(rng.uniform(0, 700, n), unit="D"),
        "amount": rng.gamma(2, 20, n),
        "quantity": 1,
        "is_return": rng.uniform(size=n) < 0.03,
        "category": rng.choice(["a", "b", "c", ""], n),
    })
    f = build_features(frame, CUTOFF)
    assert len(f) <= 50_000 and f["frequency"].sum() == (~frame["is_return"]).sum()


def test_categorical_and_naive_inputs_give_the_same_features():
    frame = tx(BASE)
    fast = frame.assign(
        customer_id=frame["customer_id"].astype("category"),
        invoice=frame["invoice"].astype("category"),
        category=frame["category"].astype("category"),
        invoiced_at=frame["invoiced_at"].dt.tz_localize(None),  # naive = UTC
    )
    pd.testing.assert_frame_equal(build_features(fast, CUTOFF), build_features(frame, CUTOFF))
    missing_cat = frame.assign(category=[None, *frame["category"].iloc[1:]])
    assert build_features(missing_cat, CUTOFF).loc["A", "category_count"] == 3  # 'toys' still bought
