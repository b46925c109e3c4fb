"""SHAP for both models: additivity in log-odds, the linear case checked by hand, plain data shapes."""

from __future__ import annotations

import numpy as np
import pytest

from churn.explain import beeswarm_data, explain_rows, global_importance, shap_explain, top_contributions
from churn.pipeline import ChurnModelBundle
from rfm_portal.customers.features import build_features


@pytest.fixture(scope="module")
def X(synthetic):
    return build_features(synthetic.transactions, synthetic.cutoff, synthetic.customers).iloc[:600]


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_shap_values_add_up_to_model_output(trained, X, kind):
    bundle = trained.holdout_models[kind]
    expl = shap_explain(bundle, X)
    assert expl.values.shape == (len(X), len(bundle.features))
    # logistic: log-odds; trees: raw margin (log-odds of the booster)
    np.testing.assert_allclose(expl.output(), bundle.decision_function(X), atol=1e-6)
    np.testing.assert_allclose(expl.proba(), bundle.predict_proba(X), atol=1e-8)


def test_linear_shap_equals_w_times_centred_z(trained, X):
    bundle = trained.holdout_models["logistic"]
    pipe = bundle.estimator
    w = pipe.named_steps["clf"].coef_[0]
    z = pipe[:-1].transform(X[bundle.features].to_numpy(float))
    zbg = pipe[:-1].transform(bundle.background[bundle.features].to_numpy(float))
    expected = w * (z - zbg.mean(axis=0))
    expl = shap_explain(bundle, X)
    np.testing.assert_allclose(expl.values, expected, atol=1e-9)
    assert expl.base_value == pytest.approx(pipe.named_steps["clf"].intercept_[0] + w @ zbg.mean(axis=0))


def test_closed_form_linear_shap_equals_shap_linear_explainer(trained, X):
    """The closed form replaced shap.LinearExplainer (independent masker over the same background): same numbers."""
    import shap

    bundle = ChurnModelBundle.from_bytes(trained.holdout_models["logistic"].to_bytes())
    pipe = bundle.estimator
    clf = pipe.named_steps["clf"]
    bg = pipe[:-1].transform(bundle.background[bundle.features].to_numpy(np.float64))
    reference = shap.LinearExplainer((clf.coef_[0].copy(), float(clf.intercept_[0])),
                                     shap.maskers.Independent(bg, max_samples=len(bg)))
    z = pipe[:-1].transform(X[bundle.features].to_numpy(np.float64))
    expl = shap_explain(bundle, X)
    np.testing.assert_allclose(expl.values, reference.shap_values(z), rtol=0, atol=1e-9)
    assert expl.base_value == pytest.approx(float(np.atleast_1d(reference.expected_value)[-1]), abs=1e-9)
    rows = explain_rows(bundle, X.iloc[:40], top_k=len(bundle.features))
    for i, row in enumerate(rows):
        by_feature = {c["feature"]: c["contribution"] for c in row["contributions"]}
        ref = dict(zip(bundle.features, reference.shap_values(z[i:i + 1])[0], strict=True))
        assert by_feature == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("kind", ["logistic", "lightgbm"])
def test_explain_rows_top_k_plus_rest_is_the_log_odds(trained, X, kind):
    bundle = trained.holdout_models[kind]
    rows = bundle.explain(X.iloc[:25], top_k=4)
    for r in rows:
        assert len(r["contributions"]) == 4
        mags = [abs(c["contribution"]) for c in r["contributions"]]
        assert mags == sorted(mags, reverse=True)
        total = r["base_value"] + sum(c["contribution"] for c in r["contributions"]) + r["rest"]
        assert total == pytest.approx(r["log_odds"], abs=1e-6)
        assert 1 / (1 + np.exp(-r["log_odds"])) == pytest.approx(r["probability"], abs=1e-9)


def test_top_contributions_vectorised_matches_sort(trained, X):
    expl = shap_explain(trained.holdout_models["lightgbm"], X)
    _idx, vals = top_contributions(expl, 3)
    ref = np.argsort(-np.abs(expl.values), axis=1)[:, :3]
    np.testing.assert_allclose(np.abs(vals), np.abs(np.take_along_axis(expl.values, ref, axis=1)))


def test_global_importance_and_beeswarm(trained, X):
    expl = shap_explain(trained.holdout_models["logistic"], X)
    imp = global_importance(expl)
    assert [i["mean_abs_shap"] for i in imp] == sorted((i["mean_abs_shap"] for i in imp), reverse=True)
    assert imp[0]["mean_abs_shap"] == pytest.approx(np.abs(expl.values).mean(axis=0).max())
    bee = beeswarm_data(expl, max_points=200, max_features=6)
    assert len(bee["features"]) == 6 and bee["n_points"] == 200
    for f in bee["features"]:
        assert len(f["shap"]) == len(f["value"]) == len(f["percentile"]) == 200
        assert 0 <= min(f["percentile"]) and max(f["percentile"]) <= 100
    row = expl.row(0)
    assert row["output"] == pytest.approx(row["base_value"] + sum(row["values"]))


def test_explainer_rebuilt_after_unpickling(trained, X):
    bundle = trained.bundle
    bundle.explain(X.iloc[:3])
    again = ChurnModelBundle.from_bytes(bundle.to_bytes())
    assert again._explainer is None
    np.testing.assert_allclose(shap_explain(again, X.iloc[:50]).values, shap_explain(bundle, X.iloc[:50]).values)
    assert explain_rows(again, X.iloc[:2], top_k=2)[0]["customer_id"] == str(X.index[0])
