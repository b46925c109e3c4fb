"""Counterfactuals: valid (re-scored below threshold), actionable-only, within bounds, and minimal for the logistic."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize

from churn.counterfactual import (
    counterfactuals,
    logistic_counterfactual,
    plausible_bounds,
    purchase_scenarios,
    solve_box_halfspace,
)
from rfm_portal.customers.features import ACTIONABLE_FEATURES, INTEGER_FEATURES, build_features


@pytest.fixture(scope="module")
def X(synthetic):
    return build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers)


def _logit(p):
    return math.log(p / (1 - p))


def _check_valid(bundle, cf):
    non_actionable = [f for f in bundle.features if f not in ACTIONABLE_FEATURES]
    for f in non_actionable:
        assert cf.counterfactual[f] == cf.original[f], f
    for f, (lo, hi) in cf.bounds.items():
        assert lo - 1e-9 <= cf.counterfactual[f] <= hi + 1e-9, (f, cf.counterfactual[f], lo, hi)
        if f in INTEGER_FEATURES:
            assert cf.counterfactual[f] == round(cf.counterfactual[f])
    rescored = float(bundle.predict_proba(pd.DataFrame([cf.counterfactual]))[0])
    assert rescored == pytest.approx(cf.new_proba, abs=1e-12)
    if cf.feasible:
        assert rescored < cf.threshold
        assert "lowers churn risk from" in cf.message
    else:
        assert rescored >= cf.threshold and cf.message.startswith("No plausible change")


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_counterfactuals_are_valid_and_actionable_only(trained, X, kind):
    bundle = trained.holdout_models[kind]
    above = X.loc[bundle.predict_proba(X) >= bundle.threshold].iloc[:25]
    cfs = counterfactuals(bundle, above)
    assert len(cfs) == len(above) > 10
    assert sum(cf.feasible for cf in cfs) >= 0.5 * len(cfs)
    for cf in cfs:
        _check_valid(bundle, cf)
        assert cf.original_proba >= bundle.threshold
    print(f"\n[{kind}] {cfs[0].message}")


def test_infeasible_is_said_honestly(trained, X):
    bundle = trained.holdout_models["logistic"]
    row = X.loc[bundle.predict_proba(X) > 0.95].iloc[0]
    corner = row.copy()
    for f, (lo, hi) in plausible_bounds(bundle, row).items():  # every lever at its most helpful bound
        p_at = {}  # the logit is separable in the features, so each lever is chosen on its own
        for edge in (lo, hi):
            trial = row.copy()
            trial[f] = edge
            p_at[edge] = float(bundle.predict_proba(pd.DataFrame([trial[bundle.features]]))[0])
        corner[f] = min(p_at, key=p_at.get)
    best = float(bundle.predict_proba(pd.DataFrame([corner[bundle.features]]))[0])
    cf = logistic_counterfactual(bundle, row, threshold=best / 2)
    assert not cf.feasible and cf.method == "infeasible" and cf.new_proba >= best / 2
    assert cf.new_proba == pytest.approx(best, rel=1e-6)  # it reports the most a campaign can do
    _check_valid(bundle, cf)
    for kind in ("lightgbm",):
        tree = trained.holdout_models[kind]
        from churn.counterfactual import search_counterfactual

        cf = search_counterfactual(tree, row, threshold=1e-4)
        assert not cf.feasible and cf.message.startswith("No plausible change")
        _check_valid(tree, cf)


def test_below_threshold_needs_nothing(trained, X):
    bundle = trained.holdout_models["logistic"]
    row = X.loc[bundle.predict_proba(X) < 0.2].iloc[0]
    cf = logistic_counterfactual(bundle, row)
    assert cf.method == "none_needed" and cf.changes == [] and cf.feasible


def _tilted_bundle(trained, X, need=-0.15):
    """A logistic bundle whose actionable weights all point the 'campaign' way, so bounds stay inactive."""
    bundle = copy.deepcopy(trained.holdout_models["logistic"])
    clf = bundle.estimator.named_steps["clf"]
    for j, f in enumerate(bundle.features):
        if f in ("recency_days", "gap_ratio"):
            clf.coef_[0, j] = 0.8
        elif f in ACTIONABLE_FEATURES:
            clf.coef_[0, j] = -0.5
    logits = bundle.decision_function(X)
    target = _logit(bundle.threshold) - 0.01
    clf.intercept_[0] += (target - need) - np.median(logits)
    logits = bundle.decision_function(X)
    row = X.iloc[int(np.argmin(np.abs(logits - (target - need))))]
    return bundle, row


def test_logistic_closed_form_is_the_minimal_norm_change(trained, X):
    bundle, row = _tilted_bundle(trained, X)
    cf = logistic_counterfactual(bundle, row, round_integers=False)
    assert cf.method == "closed_form" and cf.feasible
    # independent closed form in the scaled space
    pipe = bundle.estimator
    w = pipe.named_steps["clf"].coef_[0]
    z = pipe[:-1].transform(row[bundle.features].to_numpy(float)[None, :])[0]
    logit0 = pipe.named_steps["clf"].intercept_[0] + w @ z
    A = [j for j, f in enumerate(bundle.features) if f in ACTIONABLE_FEATURES]
    need = _logit(bundle.threshold) - 0.01 - logit0
    delta = need * w[A] / (w[A] @ w[A])
    got = np.array([cf.delta_z[bundle.features[j]] for j in A])
    np.testing.assert_allclose(got, delta, atol=1e-8)
    # brute force: scipy minimisation of ||d||² on the hyperplane, no bounds
    res = minimize(lambda d: d @ d, np.zeros(len(A)), jac=lambda d: 2 * d, method="SLSQP",
                   constraints=[{"type": "eq", "fun": lambda d: w[A] @ d - need, "jac": lambda d: w[A]}],
                   options={"ftol": 1e-14, "maxiter": 500})
    np.testing.assert_allclose(got, res.x, atol=1e-5)
    # the re-scored point sits exactly on the target log-odds
    new_logit = bundle.decision_function(pd.DataFrame([cf.counterfactual]))[0]
    assert new_logit == pytest.approx(_logit(bundle.threshold) - 0.01, abs=1e-8)
    assert cf.distance == pytest.approx(np.linalg.norm(delta), rel=1e-8)


def test_logistic_bounded_solution_matches_scipy_with_bounds(trained, X):
    bundle = trained.holdout_models["logistic"]
    pipe = bundle.estimator
    w = pipe.named_steps["clf"].coef_[0]
    A = [j for j, f in enumerate(bundle.features) if f in ACTIONABLE_FEATURES]
    above = X.loc[(bundle.predict_proba(X) >= 0.5) & (bundle.predict_proba(X) < 0.8)].iloc[:8]
    checked = 0
    for cid, row in above.iterrows():
        row = row.copy()
        row.name = cid
        cf = logistic_counterfactual(bundle, row, round_integers=False)
        if cf.method != "bounded":
            continue
        z = bundle.transform_z(row[bundle.features].to_numpy(float)[None, :])[0]
        bounds = plausible_bounds(bundle, row)
        lo, hi = [], []
        for j in A:
            f = bundle.features[j]
            for edge, out in ((bounds[f][0], lo), (bounds[f][1], hi)):
                v = row[bundle.features].to_numpy(float).copy()
                v[j] = edge
                out.append(bundle.transform_z(v[None, :])[0, j] - z[j])
        need = _logit(bundle.threshold) - 0.01 - (pipe.named_steps["clf"].intercept_[0] + w @ z)
        res = minimize(lambda d: d @ d, np.zeros(len(A)), jac=lambda d: 2 * d, method="SLSQP",
                       bounds=list(zip(lo, hi, strict=True)),
                       constraints=[{"type": "ineq", "fun": lambda d, need=need: need - w[A] @ d,
                                     "jac": lambda d: -w[A]}],
                       options={"ftol": 1e-14, "maxiter": 1000})
        got = np.array([cf.delta_z[bundle.features[j]] for j in A])
        assert res.success
        assert cf.distance <= np.linalg.norm(res.x) + 1e-5
        np.testing.assert_allclose(got, res.x, atol=1e-4)
        checked += 1
    assert checked >= 3


def test_box_halfspace_solver_against_scipy():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = 5
        w = rng.normal(size=n)
        lo, hi = -rng.uniform(0.1, 2, n), rng.uniform(0.1, 2, n)
        corner = np.where(w > 0, lo, hi)
        need = float(w @ corner) * rng.uniform(0.05, 0.95)
        d, ok = solve_box_halfspace(w, need, lo, hi)
        res = minimize(lambda x: x @ x, np.zeros(n), method="SLSQP", bounds=list(zip(lo, hi, strict=True)),
                       constraints=[{"type": "ineq", "fun": lambda x, need=need, w=w: need - w @ x}],
                       options={"ftol": 1e-14})
        assert ok and w @ d <= need + 1e-9
        np.testing.assert_allclose(d, res.x, atol=1e-5)
    d, ok = solve_box_halfspace(np.array([1.0, -1.0]), -10.0, np.array([-1.0, -1.0]), np.array([1.0, 1.0]))
    assert not ok and list(d) == [-1.0, 1.0]


def test_purchase_scenarios_are_consistent_and_phrased(trained, X):
    bundle = trained.holdout_models["logistic"]
    sample = X.loc[bundle.predict_proba(X) >= 0.6].iloc[:5]
    sc = purchase_scenarios(bundle, sample)
    assert len(sc) == 5 * (bundle.max_extra_purchases + 1)
    k0 = sc[sc["purchases"] == 0].set_index("customer_id")["proba"]
    np.testing.assert_allclose(k0.loc[sample.index.astype(str)].to_numpy(), bundle.predict_proba(sample))
    one = sc[sc["purchases"] == 1].iloc[0]
    assert one["message"].startswith("One more purchase now would move churn risk from")
    print("\n" + one["message"])


@pytest.mark.parametrize(("kind", "share"), [("logistic", 0.98), ("lightgbm", 0.85)])
def test_a_purchase_now_lowers_risk_for_almost_everyone(trained, X, kind, share):
    """Guards the modelling choices (no raw recency in the logistic, monotone trees): a model telling
    a marketer that a purchase raises churn risk would make every counterfactual suspect."""
    bundle = trained.holdout_models[kind]
    sc = purchase_scenarios(bundle, X.iloc[:1500], max_purchases=1)
    one = sc[sc["purchases"] == 1]
    assert (one["proba"] < one["original_proba"]).mean() >= share


def test_description_leaves_out_changes_below_the_shown_precision():
    from churn.counterfactual import describe_changes

    changes = [
        {"feature": "frequency", "from": 3.0, "to": 4.0},
        {"feature": "spend_90d", "from": 0.0, "to": 0.2},
    ]
    text = describe_changes(changes)
    assert text.startswith("1 more order (3 → 4 in total)")
    assert "spend" not in text
    assert describe_changes([{"feature": "spend_90d", "from": 10.0, "to": 10.3}]) == "no change"
