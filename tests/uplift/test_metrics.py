"""Qini / uplift curves, coefficients, deciles and profit: by hand and against scikit-uplift."""

from __future__ import annotations

import numpy as np
import pytest
from sklift.metrics import qini_curve as sk_qini_curve
from sklift.metrics import uplift_curve as sk_uplift_curve

from uplift.pipeline import (
    ProfitInputs,
    area_above_random,
    auuc,
    decile_table,
    profit_curve,
    qini_coefficient,
    qini_curve,
    uplift_at,
    uplift_curve,
)

# 8 customers, ranked by score: treated flags and outcomes chosen so every step is easy to follow.
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
T = np.array([1, 0, 1, 0, 1, 0, 1, 0])
Y = np.array([1, 0, 1, 1, 0, 0, 0, 1])


def test_qini_curve_by_hand():
    x, q = qini_curve(Y, T, SCORE)
    # cumulative: (n_t, n_c, r_t, r_c) after each customer
    # 1:(1,0,1,0) 2:(1,1,1,0) 3:(2,1,2,0) 4:(2,2,2,1) 5:(3,2,2,1) 6:(3,3,2,1) 7:(4,3,2,1) 8:(4,4,2,2)
    # Q·N = r_t − r_c·n_t/n_c (= r_t while the control arm is empty)
    expected = np.array([0, 1, 1, 2, 1, 2 - 1.5, 1, 2 - 4 / 3, 0]) / 8
    np.testing.assert_allclose(x, np.arange(9) / 8)
    np.testing.assert_allclose(q, expected)


def test_uplift_curve_by_hand():
    _, u = uplift_curve(Y, T, SCORE)
    # U·N = (r_t/n_t − r_c/n_c)·(n_t+n_c), 0 while an arm is empty
    expected = np.array([0, 0, (1 - 0) * 2, (1 - 0) * 3, (1 - 0.5) * 4, (2 / 3 - 0.5) * 5, (2 / 3 - 1 / 3) * 6,
                         (0.5 - 1 / 3) * 7, (0.5 - 0.5) * 8]) / 8
    np.testing.assert_allclose(u, expected)


def test_area_above_random_is_trapezoid_minus_the_diagonal():
    x = np.array([0, 0.5, 1.0])
    y = np.array([0, 0.3, 0.2])
    # trapezoids: 0.5·(0+0.3)/2 + 0.5·(0.3+0.2)/2 = 0.2; random line area = 0.2/2 = 0.1
    assert area_above_random(x, y) == pytest.approx(0.1)
    assert qini_coefficient(Y, T, SCORE) == pytest.approx(area_above_random(*qini_curve(Y, T, SCORE)))


def test_perfect_and_reversed_rankings():
    rng = np.random.default_rng(0)
    t = rng.random(4000) < 0.5
    tau = rng.uniform(-0.3, 0.5, 4000)
    y = (rng.random(4000) < 0.3 + tau * t).astype(int)
    assert qini_coefficient(y, t, tau) > 0.02
    assert qini_coefficient(y, t, -tau) < -0.02
    assert auuc(y, t, tau) > 0 > auuc(y, t, -tau)
    assert uplift_at(y, t, tau, 0.1) > 0.3 > uplift_at(y, t, -tau, 0.1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curves_match_scikit_uplift(seed):
    rng = np.random.default_rng(seed)
    n = 500
    t = (rng.random(n) < 0.4).astype(int)
    y = (rng.random(n) < 0.2 + 0.2 * t).astype(int)
    score = np.round(rng.random(n), 2)  # with ties: both treat a block of equal scores as one step
    x_sk, q_sk = sk_qini_curve(y, score, t)
    x_me, q_me = qini_curve(y, t, score)
    np.testing.assert_allclose(x_me[1:] * n, x_sk[1:])
    np.testing.assert_allclose(q_me[1:] * n, q_sk[1:])
    ux_sk, u_sk = sk_uplift_curve(y, score, t)
    ux_me, u_me = uplift_curve(y, t, score)
    np.testing.assert_allclose(ux_me[1:] * n, ux_sk[1:])
    np.testing.assert_allclose(u_me[1:] * n, u_sk[1:])


def test_deciles_have_counts_rates_and_intervals():
    rng = np.random.default_rng(1)
    t = rng.random(2000) < 0.5
    tau = rng.uniform(0, 0.4, 2000)
    y = (rng.random(2000) < 0.2 + tau * t).astype(int)
    rows = decile_table(y, t, tau)
    assert len(rows) == 10 and sum(r["n_treated"] + r["n_control"] for r in rows) == 2000
    for r in rows:
        assert r["treated_ci"][0] <= r["treated_rate"] <= r["treated_ci"][1]
        assert r["uplift_ci"][0] <= r["uplift"] <= r["uplift_ci"][1]
    assert rows[0]["uplift"] > rows[-1]["uplift"]  # the planted effect is largest in the top decile


def test_profit_curve_by_hand():
    conv = np.array([1, 0, 1, 0])
    rev = np.array([10.0, 0.0, 4.0, 0.0])
    t = np.array([1, 0, 1, 0])
    score = np.array([4, 3, 2, 1])
    inputs = ProfitInputs(contact_cost=1.0, incentive_cost=2.0, margin=0.5)
    x, p = profit_curve(conv, rev, t, score, inputs, points=5)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    # top 2: Δrevenue 10 − 0 = 10; per contact 0.5·10 − 1 − 2·1 = 2; × 2 customers / 4
    # top 3: Δrevenue 14/2 − 0 = 7; 0.5·7 − 1 − 2·1 = 0.5; × 3 / 4.  top 4: the same per contact, × 4 / 4
    assert p[0] == 0 and p[1] == 0  # one arm empty: nothing measurable
    assert p[2] == pytest.approx(2 * 2 / 4)
    assert p[3] == pytest.approx(0.5 * 3 / 4)
    assert p[4] == pytest.approx(0.5 * 4 / 4)
