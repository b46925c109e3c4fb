"""Fitting: weighted = plain, standard errors, recovery on synthetic data, penalizer ladder, bundle."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter
from scipy.stats import rankdata

from cltv import pipeline as P
from cltv.simulation import simulate_population, simulate_spend
from cltv.summary import calibration_and_holdout

from .conftest import CALIBRATION_END, OBSERVATION_END

TRUTH = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
GG_TRUTH = {"p": 6.0, "q": 4.0, "v": 15.0}


@pytest.fixture(scope="module")
def cal(cdnow_sample: pd.DataFrame) -> pd.DataFrame:
    return calibration_and_holdout(cdnow_sample, CALIBRATION_END, OBSERVATION_END, unit="W")


@pytest.fixture(scope="module")
def synthetic() -> dict[str, np.ndarray]:
    """30,000 BG/NBD + Gamma-Gamma customers with known parameters; ages in whole days (10-52 weeks)."""
    rng = np.random.default_rng(42)
    T = rng.integers(70, 365, 30_000) / 7
    data = simulate_population("bgnbd", TRUTH, T, rng)
    data["nu"], data["monetary_value"] = simulate_spend(GG_TRUTH, data["frequency"], rng)
    return data


def _plain(fitter_cls: type, *args: object, **kwargs: object) -> tuple[dict[str, float], object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = fitter_cls().fit(*args, **kwargs)
    return dict(fitter.params_), fitter


@pytest.mark.parametrize(("model", "fitter_cls"), [("bgnbd", BetaGeoFitter), ("mbgnbd", ModifiedBetaGeoFitter)])
def test_weighted_unique_row_fit_equals_plain_lifetimes_fit(cal: pd.DataFrame, model: str, fitter_cls: type) -> None:
    x, tx, T = cal["frequency_cal"], cal["recency_cal"], cal["T_cal"]
    fit = P.fit_transaction_model(x, tx, T, model)
    plain, _ = _plain(fitter_cls, x, tx, T)
    assert fit.n_unique < fit.n_customers / 2
    for name, value in plain.items():
        assert fit.params[name] == pytest.approx(value, rel=1e-4), name
    # and our own per-customer ("compress=False") path agrees too
    uncompressed = P.fit_transaction_model(x, tx, T, model, compress=False)
    assert uncompressed.log_likelihood == pytest.approx(fit.log_likelihood, rel=1e-9)


def test_weighted_fit_equals_plain_for_pareto_and_gamma_gamma(cal: pd.DataFrame) -> None:
    x, tx, T = cal["frequency_cal"], cal["recency_cal"], cal["T_cal"]
    fit = P.fit_transaction_model(x, tx, T, "pareto_nbd")
    plain, _ = _plain(ParetoNBDFitter, x, tx, T, initial_params=np.ones(4), maxiter=4000, tol=1e-6)
    for name, value in plain.items():  # Nelder-Mead: lifetimes scales the weighted objective by n_unique/N
        assert fit.params[name] == pytest.approx(value, rel=2e-3), name
    rep = (cal["frequency_cal"] > 0).to_numpy()
    gg = P.fit_gamma_gamma(x, cal["monetary_value_cal"])
    plain_gg, _ = _plain(GammaGammaFitter, x[rep], cal["monetary_value_cal"][rep])
    for name, value in plain_gg.items():
        assert gg.params[name] == pytest.approx(value, rel=1e-4), name


def test_standard_errors_match_lifetimes_summary(cal: pd.DataFrame) -> None:
    x, tx, T = cal["frequency_cal"], cal["recency_cal"], cal["T_cal"]
    fit = P.fit_transaction_model(x, tx, T, "bgnbd")
    _, fitter = _plain(BetaGeoFitter, x, tx, T)
    table = fit.param_table()
    for name in ("r", "alpha", "a", "b"):
        assert table.loc[name, "se(coef)"] == pytest.approx(fitter.summary.loc[name, "se(coef)"], rel=2e-3), name
    assert list(table.columns) == ["coef", "se(coef)", "lower 95% bound", "upper 95% bound"]
    pareto = P.fit_transaction_model(x, tx, T, "pareto_nbd")  # lifetimes gives no SEs for Pareto/NBD
    assert all(np.isfinite(v) and v > 0 for v in pareto.standard_errors.values())


def _auc(score: np.ndarray, label: np.ndarray) -> float:
    ranks = rankdata(score)
    n1 = int(label.sum())
    n0 = label.shape[0] - n1
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_parameters_are_recovered_and_p_alive_ranks_the_alive(synthetic: dict[str, np.ndarray]) -> None:
    d = synthetic
    fit = P.fit_transaction_model(d["frequency"], d["recency"], d["T"], "bgnbd")
    for name, true in TRUTH.items():
        se = fit.standard_errors[name]
        assert abs(fit.params[name] - true) < 4 * se, (name, fit.params[name], true, se)
        assert fit.params[name] == pytest.approx(true, rel=0.15), name
    pa = P.probability_alive("bgnbd", fit.params, d["frequency"], d["recency"], d["T"])
    alive = d["alive"].astype(bool)
    assert _auc(pa, alive) > 0.85  # 0.94 observed (all x = 0 customers are alive and get P = 1)
    repeat = d["frequency"] > 0
    assert _auc(pa[repeat], alive[repeat]) > 0.75  # 0.78 observed among repeat buyers
    gg = P.fit_gamma_gamma(d["frequency"], d["monetary_value"])
    for name, true in GG_TRUTH.items():
        assert abs(gg.params[name] - true) < 4 * gg.standard_errors[name], name
    assert abs(gg.extra["frequency_monetary_corr"]) < 0.05 and gg.extra["independence_ok"]


def test_penalizer_ladder_retries_until_a_clean_fit() -> None:
    """No heterogeneity at all (one λ, one p): unpenalised, r, α, a, b run off to infinity."""
    rng = np.random.default_rng(0)
    n = 3000
    T = rng.uniform(20, 40, n)
    m = rng.poisson(0.2 * T)
    x = np.minimum(m, rng.geometric(np.full(n, 0.1)))
    rec = np.where(x > 0, T * rng.beta(np.maximum(x, 1), np.maximum(m - x + 1, 1)), 0.0)
    fit = P.fit_transaction_model(x, rec, T, "bgnbd")
    first = fit.attempts[0]
    assert first.penalizer == 0.0 and not first.ok
    assert "ConvergenceError" in first.reason or "upper bound" in first.reason
    assert fit.penalizer == 0.001 and fit.attempts[-1].ok and not fit.degenerate
    assert max(fit.params.values()) < 1e3
    pa = P.probability_alive("bgnbd", fit.params, x, rec, T)
    assert np.isfinite(pa).all()


def test_no_dropout_data_is_flagged_degenerate_but_usable() -> None:
    """Nobody ever leaves: a → 0 at every penalizer; the fit is kept, flagged, and still predicts."""
    rng = np.random.default_rng(1)
    T = rng.uniform(20, 40, 3000)
    lam = rng.gamma(2.0, 0.15, 3000)
    x = rng.poisson(lam * T)
    rec = np.where(x > 0, T * rng.beta(np.maximum(x, 1), 1), 0.0)
    fit = P.fit_transaction_model(x, rec, T, "bgnbd", penalizers=(0.0, 0.01))
    assert fit.degenerate and "lower bound" in fit.degenerate and len(fit.attempts) == 2
    assert fit.penalizer == 0.0
    pa = P.probability_alive("bgnbd", fit.params, x, rec, T)
    assert np.all(pa > 0.99)


def test_failing_optimiser_is_reported_per_rung(cal: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    from lifetimes.utils import ConvergenceError

    def never_converges(self: BetaGeoFitter, *args: object, **kwargs: object) -> BetaGeoFitter:
        raise ConvergenceError("The model did not converge.")

    monkeypatch.setattr(BetaGeoFitter, "fit", never_converges)
    with pytest.raises(RuntimeError, match=r"failed for every penalizer: 0.0: ConvergenceError.*; 0.1: Conv"):
        P.fit_transaction_model(cal["frequency_cal"], cal["recency_cal"], cal["T_cal"], "bgnbd", penalizers=(0.0, 0.1))
    comparison = P.compare_models(cal, ("bgnbd", "pareto_nbd"))  # a failing candidate is listed, never chosen
    assert comparison.chosen == "pareto_nbd"
    assert "failed for every penalizer" in comparison.table.set_index("model").loc["bgnbd", "error"]
    with pytest.raises(ValueError, match="finite"):
        P.fit_transaction_model(np.array([0.0]), np.array([0.0]), np.array([np.nan]), "mbgnbd")


def test_model_comparison_picks_the_lowest_holdout_error(cal: pd.DataFrame) -> None:
    comparison = P.compare_models(cal)
    table = comparison.table.set_index("model")
    assert set(table.index) == {"bgnbd", "mbgnbd", "pareto_nbd"}
    assert comparison.chosen == table["rmse"].idxmin() and table.loc[comparison.chosen, "chosen"]
    assert (table["actual_total"] == cal["frequency_holdout"].sum()).all()
    # Fader-Hardie-Lee: BG/NBD predicts CDNOW's holdout well in aggregate (within ~15 %)
    assert abs(table.loc["bgnbd", "aggregate_error"]) < 0.15
    by_mae = P.compare_models(cal, ("bgnbd", "mbgnbd"), selection_metric="mae")
    assert by_mae.chosen == by_mae.table.set_index("model")["mae"].idxmin()


@pytest.fixture(scope="module")
def training(cdnow_sample: pd.DataFrame) -> P.CLTVTraining:
    config = P.CLTVConfig(unit="W", annual_discount_rate=0.1, margin=0.3, n_draws=100)
    return P.train_cltv(cdnow_sample, observation_end=OBSERVATION_END, calibration_end=CALIBRATION_END, config=config)


def test_training_end_to_end_and_bundle_round_trip(training: P.CLTVTraining) -> None:
    bundle = training.bundle
    assert bundle.model == training.comparison.chosen
    assert bundle.observation_end == "1998-06-30" and bundle.unit == "W"
    assert bundle.metrics["calibration_end"] == "1997-09-30" and len(bundle.metrics["comparison"]) == 3
    assert bundle.penalizers == {"transactions": 0.0, "gamma_gamma": 0.0}
    text = bundle.to_json()
    assert "NaN" not in text and "Infinity" not in text
    restored = P.CLTVModelBundle.from_json(text)
    assert restored == bundle and json.loads(text)["params"] == bundle.params
    summary = training.summary
    a = P.score_frame(bundle, summary.head(300))
    b = restored.predict(summary.head(300)[["frequency", "recency", "T", "monetary_value"]])
    pd.testing.assert_frame_equal(a, b)


def test_predict_raw_payloads_and_validation(training: P.CLTVTraining) -> None:
    bundle = training.bundle
    one = bundle.predict({"frequency": 2, "recency": 30.43, "T": 38.86, "monetary_value": 22.35})
    assert one.shape[0] == 1 and 0 < one["p_alive"].iloc[0] < 1
    assert list(one.columns[:5]) == [
        "p_alive",
        "expected_purchases_30d",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "expected_aov",
    ]
    e = one.iloc[0]
    assert e["expected_purchases_30d"] < e["expected_purchases_90d"] < e["expected_purchases_365d"]
    assert e["clv_p10"] <= e["clv_p50"] <= e["clv_p90"]
    new = bundle.predict([{"frequency": 0, "recency": 0, "T": 10, "monetary_value": 0}])
    assert new["expected_aov"].iloc[0] == pytest.approx(P.gamma_gamma_population_mean(bundle.gamma_gamma))
    for bad, message in [
        ({"frequency": 1, "recency": 5, "T": 4, "monetary_value": 1}, "recency must not exceed T"),
        ({"frequency": 0, "recency": 5, "T": 6, "monetary_value": 0}, "recency must be 0"),
        ({"frequency": 1.5, "recency": 1, "T": 6, "monetary_value": 3}, "non-negative integer"),
        ({"frequency": 1, "recency": 1, "T": 6}, "missing fields: monetary_value"),
        ({"frequency": "x", "recency": 1, "T": 6, "monetary_value": 1}, "non-numeric"),
    ]:
        with pytest.raises(ValueError, match=message):
            bundle.predict(bad)


def test_clv_is_never_negative(training: P.CLTVTraining) -> None:
    bundle = training.bundle
    rng = np.random.default_rng(3)
    n = 2000
    T = rng.uniform(0, 200, n)
    x = rng.integers(0, 80, n).astype(float)
    rec = np.where(x > 0, T * rng.uniform(0, 1, n), 0.0)
    m = np.where(x > 0, rng.choice([0.0, 0.01, 50.0, 5000.0], n), 0.0)
    payload = pd.DataFrame({"frequency": x, "recency": rec, "T": T, "monetary_value": m})
    for margin, rate in [(0.3, 0.1), (0.0, 0.1), (1.0, -0.5), (1.0, 5.0)]:
        b = P.CLTVModelBundle.from_dict({**bundle.to_dict(), "margin": margin, "annual_discount_rate": rate})
        scores = b.predict(payload)
        value_cols = ["clv", "clv_p10", "clv_p50", "clv_p90", "clv_sim_mean", "expected_aov"]
        assert np.isfinite(scores.to_numpy()).all()
        assert (scores[value_cols].to_numpy() >= 0).all()
        assert ((scores["p_alive"] >= 0) & (scores["p_alive"] <= 1)).all()


def test_default_holdout_split_and_daily_unit(cdnow_sample: pd.DataFrame) -> None:
    config = P.CLTVConfig(unit="D", models=("bgnbd",), n_draws=20, holdout_fraction=0.25)
    result = P.train_cltv(cdnow_sample, config=config)
    assert result.observation_end == pd.Timestamp("1998-06-30")
    # The holdout holds the last quarter of purchase days (a transaction-time quantile, not the span).
    days = pd.to_datetime(cdnow_sample["invoiced_at"]).dt.normalize()
    assert (days > result.calibration_end).mean() == pytest.approx(0.25, abs=0.01)
    assert days[days <= result.calibration_end].max() == result.calibration_end
    assert result.bundle.unit == "D" and result.bundle.model == "bgnbd"
    weekly = P.fit_transaction_model(
        result.summary["frequency"], result.summary["recency"] / 7, result.summary["T"] / 7, "bgnbd"
    )
    # the unit only rescales α: r, a, b are unit-free
    for name in ("r", "a", "b"):
        assert result.transaction_fit.params[name] == pytest.approx(weekly.params[name], rel=1e-3)
    assert result.transaction_fit.params["alpha"] == pytest.approx(7 * weekly.params["alpha"], rel=1e-3)
    scores = result.bundle.predict(result.summary[["frequency", "recency", "T", "monetary_value"]].head(50))
    weekly_bundle = P.CLTVModelBundle.from_dict(
        {**result.bundle.to_dict(), "unit": "W", "params": weekly.params, "n_draws": 20}
    )
    weekly_payload = (
        result.summary[["frequency", "recency", "T", "monetary_value"]]
        .head(50)
        .assign(recency=lambda f: f["recency"] / 7, T=lambda f: f["T"] / 7)
    )
    np.testing.assert_allclose(
        scores["expected_purchases_90d"], weekly_bundle.predict(weekly_payload)["expected_purchases_90d"], rtol=1e-3
    )


def test_a_comparison_on_a_sample_takes_the_full_comparisons_decision(cdnow_master: pd.DataFrame) -> None:
    # The full CDNOW master (23,570 customers): the comparison on a 10,000-customer sample picks the
    # model the comparison on every customer picks, and the sampled fits' parameters stay close.
    cal = calibration_and_holdout(cdnow_master, CALIBRATION_END, OBSERVATION_END, unit="W")
    models = ("bgnbd", "pareto_nbd")  # the fast model and the slow challenger
    full = P.compare_models(cal, models)
    sampled_rows = P.comparison_rows(cal, 10_000, seed=0)
    assert len(sampled_rows) == 10_000 and P.comparison_rows(cal, None, seed=0) is cal
    sampled = P.compare_models(sampled_rows, models)
    assert sampled.chosen == full.chosen
    full_rmse = full.table.set_index("model")["rmse"]
    sampled_rmse = sampled.table.set_index("model")["rmse"]
    assert list(sampled_rmse.sort_values().index) == list(full_rmse.sort_values().index)  # same ranking
    for name in ("r", "alpha", "a", "b"):  # BG/NBD on 10k of 23.5k customers: within 15 %
        assert sampled.fits["bgnbd"].params[name] == pytest.approx(full.fits["bgnbd"].params[name], rel=0.15)
