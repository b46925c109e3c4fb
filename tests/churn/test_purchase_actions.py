"""Counterfactuals as purchases: every suggested action, applied to the customer's transactions and re-scored through
the one feature definition, gives the stated risk; the headline is one of the actions; no duplicates."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from churn.counterfactual import actions_from_features, actions_from_transactions, typical_order_value
from rfm_portal.customers.features import apply_purchases, build_features

DAYS = 30


@pytest.fixture(scope="module")
def X(synthetic):
    return build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers)


def _orders(cid, k: int, value: float, times: list[pd.Timestamp]) -> pd.DataFrame:
    """Written here independently of the code under test: k purchase invoices of ``value`` at ``times``."""
    return pd.DataFrame({"customer_id": cid, "invoice": [f"test-{cid}-{i}" for i in range(k)],
                         "invoiced_at": pd.to_datetime(times, utc=True), "amount": value, "quantity": 1,
                         "is_return": False, "category": ""})


def _rescore(bundle, synthetic, cid, extra: pd.DataFrame, at: pd.Timestamp) -> float:
    tx = synthetic.transactions[synthetic.transactions["customer_id"] == cid]
    tx = pd.concat([tx.astype({"invoice": str, "category": str}), extra], ignore_index=True)
    feats = build_features(tx, at, synthetic.customers[synthetic.customers["customer_id"] == cid])
    return float(bundle.predict_proba(feats.loc[[cid]])[0])


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_each_action_applied_to_the_transactions_gives_the_stated_risk(trained, synthetic, X, kind):
    bundle = trained.holdout_models[kind]
    risky = X.index[bundle.predict_proba(X) >= bundle.threshold][:12]
    checked = 0
    for cid in risky:
        plan = actions_from_transactions(bundle, synthetic.transactions, synthetic.cutoff, cid, synthetic.customers,
                                         days=DAYS)
        assert plan.risk == pytest.approx(float(bundle.predict_proba(X.loc[[cid]])[0]), abs=1e-12)
        for action in plan.actions:
            k = action.orders
            times = [synthetic.cutoff + pd.Timedelta(days=DAYS * (i + 1) / k) - pd.Timedelta(hours=12)
                     for i in range(k)]
            stated = _rescore(bundle, synthetic, cid, _orders(cid, k, action.order_value, times),
                              synthetic.cutoff + pd.Timedelta(days=DAYS))
            assert action.risk_after == pytest.approx(stated, abs=1e-12)
            assert f"from {plan.risk:.0%} to {stated:.0%}" in action.message
            assert f"{k} more order" in action.message and f"in the next {DAYS} days" in action.message
            assert action.below_threshold == (stated < bundle.threshold)
            checked += 1
        nothing = _rescore(bundle, synthetic, cid, _orders(cid, 0, 0.0, []),
                           synthetic.cutoff + pd.Timedelta(days=DAYS))
        assert plan.risk_if_nothing == pytest.approx(nothing, abs=1e-12)
    assert checked >= 12


def test_headline_is_one_of_the_actions_and_never_contradicts_them(trained, synthetic, X):
    bundle = trained.holdout_models["logistic"]
    risky = X.index[bundle.predict_proba(X) >= bundle.threshold][:25]
    for cid in risky:
        plan = actions_from_transactions(bundle, synthetic.transactions, synthetic.cutoff, cid, synthetic.customers)
        messages = [a.message for a in plan.actions]
        assert len(set(messages)) == len(messages)
        assert len({f"{a.risk_after:.0%}" for a in plan.actions}) == len(plan.actions)  # no repeated outcome
        best = plan.best
        assert best.message[:-1] in plan.headline
        if plan.reaches_threshold:
            assert best.below_threshold and best.orders == min(a.orders for a in plan.actions if a.below_threshold)
            assert "below the" in plan.headline and not plan.headline.startswith("Even")
        else:
            assert plan.headline.startswith("Even") and best.risk_after == min(a.risk_after for a in plan.actions)
        quoted = [float(v) / 100 for v in re.findall(r"to (\d+)%", plan.headline)]
        assert quoted == [pytest.approx(round(best.risk_after * 100) / 100)]


def test_orders_now_from_features_match_the_transactions(trained, synthetic, X):
    """The API's payload path (no transactions): apply_purchases = build_features with the orders at the cut-off."""
    bundle = trained.holdout_models["logistic"]
    sample = X.loc[bundle.predict_proba(X) >= bundle.threshold].iloc[:8]
    plans = actions_from_features(bundle, sample)
    for cid in sample.index:
        plan = plans[str(cid)]
        assert plan.days == 0 and all("now" in a.message for a in plan.actions)
        for action in plan.actions:
            at = [synthetic.cutoff - pd.Timedelta(microseconds=1)] * action.orders
            stated = _rescore(bundle, synthetic, cid, _orders(cid, action.orders, action.order_value, at),
                              synthetic.cutoff)
            assert action.risk_after == pytest.approx(stated, abs=1e-6)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_all_rows_at_once_equal_the_row_by_row_search(trained, synthetic, X, kind):
    """actions_from_features scores every (customer, k) candidate in one call; a plain per-customer loop (each
    customer's own frame, one re-scoring per k) states the same risks and picks the same action."""
    bundle = trained.holdout_models[kind]
    sample = X.iloc[::10]
    p0 = bundle.predict_proba(sample)
    assert (p0 >= bundle.threshold).sum() >= 50 and (p0 < bundle.threshold).sum() >= 50
    plans = actions_from_features(bundle, sample)
    assert list(plans) == [str(cid) for cid in sample.index]
    for cid in sample.index:
        row = sample.loc[[cid]]
        value = typical_order_value(sample.loc[cid])
        risks = [float(bundle.predict_proba(apply_purchases(row, k, value))[0])
                 for k in range(1, bundle.max_extra_purchases + 1)]
        plan = plans[str(cid)]
        assert plan.risk == pytest.approx(float(bundle.predict_proba(row)[0]), abs=1e-12)
        assert plan.order_value == value
        shown = {}
        for k, risk in enumerate(risks, start=1):
            shown.setdefault(f"{risk:.0%}", (k, risk))  # the smallest k of each visible outcome
        assert [(a.orders, a.risk_after) for a in plan.actions] == [
            (k, pytest.approx(r, abs=1e-12)) for k, r in shown.values()]
        below = [k for k, r in shown.values() if r < bundle.threshold]
        assert plan.best.orders == (below[0] if below else min(shown.values(), key=lambda kr: kr[1])[0])
    # the chosen action of the risky ones, re-scored through the transactions and build_features
    for cid in sample.index[p0 >= bundle.threshold][:10]:
        best = plans[str(cid)].best
        at = [synthetic.cutoff - pd.Timedelta(microseconds=1)] * best.orders
        stated = _rescore(bundle, synthetic, cid, _orders(cid, best.orders, best.order_value, at), synthetic.cutoff)
        assert best.risk_after == pytest.approx(stated, abs=1e-6)
