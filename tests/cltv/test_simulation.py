"""Posterior simulation vs closed forms; generators vs lifetimes' formulas; validation outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from cltv import pipeline as P
from cltv.simulation import HorizonSteps, simulate_clv, simulate_population
from cltv.summary import calibration_and_holdout

from .conftest import CALIBRATION_END, OBSERVATION_END

PARAMS = {
    "bgnbd": {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    "mbgnbd": {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    "pareto_nbd": {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
}
GG = {"p": 6.25, "q": 3.74, "v": 15.44}


@pytest.fixture(scope="module")
def cal(cdnow_sample: pd.DataFrame) -> pd.DataFrame:
    return calibration_and_holdout(cdnow_sample, CALIBRATION_END, OBSERVATION_END, unit="W")


def _arrays(cal: pd.DataFrame) -> tuple[np.ndarray, ...]:
    return tuple(cal[c].to_numpy(dtype=float) for c in ("frequency_cal", "recency_cal", "T_cal", "monetary_value_cal"))


@pytest.mark.parametrize("model", list(PARAMS))
def test_population_generator_matches_the_closed_form(model: str) -> None:
    """Mean repeat purchases by t of the vectorised generator = lifetimes' E[X(t)] (e.g. BG/NBD eq. 9)."""
    rng = np.random.default_rng(7)
    fitter = P.make_fitter(model, PARAMS[model])
    for t in (10.0, 39.0, 78.0):
        draws = simulate_population(model, PARAMS[model], np.full(400_000, t), rng)
        expected = float(fitter.expected_number_of_purchases_up_to_time(t))
        se = draws["frequency"].std() / np.sqrt(draws["frequency"].shape[0])
        assert abs(draws["frequency"].mean() - expected) < 4 * se, (t, draws["frequency"].mean(), expected)
        assert (draws["recency"] <= t).all() and ((draws["frequency"] == 0) == (draws["recency"] == 0)).all()
    if model == "bgnbd":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p0 = float(fitter.probability_of_n_purchases_up_to_time(39.0, 0))
        draws = simulate_population(model, PARAMS[model], np.full(400_000, 39.0), rng)
        assert (draws["frequency"] == 0).mean() == pytest.approx(p0, abs=0.004)


@pytest.mark.parametrize("model", list(PARAMS))
def test_simulated_mean_equals_closed_form_clv(cal: pd.DataFrame, model: str) -> None:
    x, tx, T, m = _arrays(cal)
    steps = HorizonSteps.build(365.0, 365.25 / 12, 7.0, 0.10)
    pa = P.probability_alive(model, PARAMS[model], x, tx, T)
    closed = P.expected_clv(model, PARAMS[model], GG, x, tx, T, m, steps, margin=0.3)
    sim = simulate_clv(model, PARAMS[model], GG, x, tx, T, m, pa, steps, margin=0.3, n_draws=400, seed=1)
    assert sim.mean.sum() == pytest.approx(closed.sum(), rel=0.02)
    # per customer, for the 40 most valuable customers, with many draws
    top = np.argsort(-closed)[:40]
    many = simulate_clv(
        model, PARAMS[model], GG, x[top], tx[top], T[top], m[top], pa[top], steps, margin=0.3, n_draws=20_000, seed=2
    )
    np.testing.assert_allclose(many.mean, closed[top], rtol=0.06)
    assert (sim.quantiles[:, 0] <= sim.quantiles[:, 1]).all() and (sim.quantiles[:, 1] <= sim.quantiles[:, 2]).all()
    assert (sim.quantiles >= 0).all()


def test_simulation_is_reproducible_and_groups_add_up(cal: pd.DataFrame) -> None:
    x, tx, T, m = _arrays(cal)
    steps = HorizonSteps.build(180.0, 30.0, 7.0, 0.05)
    pa = P.probability_alive("bgnbd", PARAMS["bgnbd"], x, tx, T)
    groups = (np.arange(x.shape[0]) % 5).astype(int)
    kw = {"margin": 1.0, "n_draws": 50, "chunk_size": 700, "groups": groups, "n_groups": 5}
    a = simulate_clv("bgnbd", PARAMS["bgnbd"], GG, x, tx, T, m, pa, steps, seed=11, **kw)
    b = simulate_clv("bgnbd", PARAMS["bgnbd"], GG, x, tx, T, m, pa, steps, seed=11, **kw)
    c = simulate_clv("bgnbd", PARAMS["bgnbd"], GG, x, tx, T, m, pa, steps, seed=12, **kw)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    assert not np.array_equal(a.mean, c.mean)
    assert a.group_draws is not None and a.group_draws.shape == (5, 50)
    np.testing.assert_allclose(a.group_draws.mean(axis=1).sum(), a.mean.sum(), rtol=1e-9)
    for g in range(5):
        assert a.group_draws[g].mean() == pytest.approx(a.mean[groups == g].sum(), rel=1e-9)
    dead = simulate_clv("bgnbd", PARAMS["bgnbd"], GG, x, tx, T, m, np.zeros_like(pa), steps, n_draws=20)
    assert (dead.quantiles == 0).all() and (dead.mean == 0).all()


def test_horizon_steps() -> None:
    steps = HorizonSteps.build(365.0, 365.25 / 12, 7.0, 0.10)
    assert steps.edges.shape == (12,) and steps.edges[-1] == pytest.approx(365 / 7)
    assert steps.lengths.sum() == pytest.approx(365 / 7)
    assert steps.discount[-1] == pytest.approx(1 / 1.1)
    assert (np.diff(steps.discount) < 0).all()
    with pytest.raises(ValueError):
        HorizonSteps.build(0.0, 30.0, 1.0, 0.1)


@pytest.fixture(scope="module")
def training(cdnow_sample: pd.DataFrame) -> P.CLTVTraining:
    config = P.CLTVConfig(models=("bgnbd", "pareto_nbd"), n_draws=200, margin=0.3)
    return P.train_cltv(cdnow_sample, observation_end=OBSERVATION_END, calibration_end=CALIBRATION_END, config=config)


def test_cohort_table_band(training: P.CLTVTraining) -> None:
    scores, cohorts = P.score_with_cohorts(training.bundle, training.summary)
    assert list(cohorts["cohort"].dt.strftime("%Y-%m")) == ["1997-01", "1997-02", "1997-03"]
    assert cohorts["customers"].sum() == len(training.summary) == 2357
    assert (cohorts["p10"] < cohorts["p50"]).all() and (cohorts["p50"] < cohorts["p90"]).all()
    np.testing.assert_allclose(cohorts["simulated_mean"], cohorts["expected_clv"], rtol=0.05)
    assert (cohorts["p10"] < cohorts["expected_clv"]).all() and (cohorts["expected_clv"] < cohorts["p90"]).all()
    assert cohorts["expected_clv"].sum() == pytest.approx(scores["clv"].sum())
    assert "group_draws" not in scores.attrs


def test_validation_tables(training: P.CLTVTraining) -> None:
    fit = training.comparison.fits["bgnbd"]
    cal = training.cal_holdout
    cvh = P.calibration_vs_holdout(fit, cal, max_frequency=7)
    assert list(cvh.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert cvh["customers"].sum() == len(cal)
    assert cvh["predicted"].is_monotonic_increasing and cvh["actual"].iloc[-1] > cvh["actual"].iloc[0]
    pt = P.period_transactions(fit, cal["frequency_cal"], cal["T_cal"], max_frequency=7)
    assert pt["actual"].sum() == len(cal) and pt["model"].sum() == pytest.approx(len(cal))
    assert pt.loc["0", "actual"] == 1411 and abs(pt.loc["0", "model"] - 1411) < 30  # the BG/NBD paper's Figure 3
    mats = P.frequency_recency_matrices(fit, max_frequency=10, max_T=39.0)
    assert mats.expected_purchases.shape == mats.p_alive.shape == (40, 11)
    assert np.allclose(mats.p_alive[:, 0], 1.0)  # BG/NBD: no repeat purchase → alive
    assert (np.diff(mats.p_alive[:, 5]) >= 0).all()  # more recent → more likely alive
    assert (np.diff(mats.expected_purchases[-1, :]) > 0).all()  # at recency = T, more purchases → more expected
    assert mats.to_dict()["p_alive"][0][0] == 1.0
