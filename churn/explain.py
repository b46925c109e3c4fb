"""SHAP explanations of the churn models as plain data (the portal draws them with Plotly).

* Logistic baseline: interventional SHAP on the model's own input space — the signed-log,
  standardised features ``z`` — over the bundle's background sample. For a linear model that is
  closed form, φ_j = w_j · (z_j − E_bg[z_j]) with ``base_value = intercept + w·E_bg[z]``, so
  ``base_value + Σ_j φ_j = intercept + w·z`` = the model's log-odds, exactly. It is what
  ``shap.LinearExplainer`` with an independent masker over the same background computes (same
  operations; ``tests/churn/test_shap.py`` checks it against shap), one matrix expression for
  every row instead of an explainer object.
* Gradient-boosting challenger: ``shap.TreeExplainer`` (path-dependent TreeSHAP; for LightGBM
  shap delegates to LightGBM's own ``pred_contrib``). Contributions are in the raw margin, which
  for a binary log-loss booster is also log-odds: ``base_value + Σ φ = raw_score``.

Each contribution belongs to one raw feature (the transforms are per column), so the values
shown next to a contribution are the customer's raw feature values.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.pipeline import openmp_threads_for
from rfm_portal.customers.features import FEATURE_DOCS

if TYPE_CHECKING:
    from churn.pipeline import ChurnModelBundle


@dataclass
class ShapExplanation:
    """Explanation-like plain data: ``base_value + values.sum(1)`` = the model output (log-odds)."""

    base_value: float
    values: np.ndarray  # (n, p) contributions
    data: np.ndarray  # (n, p) raw feature values
    feature_names: list[str]
    index: list[str]
    output_space: str
    model_kind: str

    def output(self) -> np.ndarray:
        """The model output each row's contributions add up to (log-odds)."""
        return self.base_value + self.values.sum(axis=1)

    def proba(self) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.output()))

    def row(self, i: int) -> dict[str, Any]:
        """One customer's explanation as JSON-able data (features in the bundle's order)."""
        return {
            "customer_id": str(self.index[i]),
            "base_value": float(self.base_value),
            "output": float(self.output()[i]),
            "probability": float(self.proba()[i]),
            "output_space": self.output_space,
            "model_kind": self.model_kind,
            "features": list(self.feature_names),
            "labels": [FEATURE_DOCS.get(f, {}).get("label", f) for f in self.feature_names],
            "values": self.values[i].astype(float).tolist(),
            "data": self.data[i].astype(float).tolist(),
        }


@dataclass(frozen=True)
class LinearShap:
    """Interventional SHAP of ``intercept + coef·z`` over a background: φ = (z − mean) · coef (log-odds)."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray  # the background's mean in the model's input space z

    @property
    def expected_value(self) -> float:
        return float(np.dot(self.coef, self.mean) + self.intercept)

    def shap_values(self, Z: np.ndarray) -> np.ndarray:
        return np.array(Z - self.mean) * self.coef


def _explainer(bundle: ChurnModelBundle) -> Any:
    """The bundle's explainer, built once per loaded bundle (not pickled)."""
    if bundle._explainer is not None:
        return bundle._explainer
    if bundle.kind == "logistic":
        pipe = bundle.estimator
        clf = pipe.named_steps["clf"]
        bg = pipe[:-1].transform(bundle.background[bundle.features].to_numpy(np.float64))
        explainer: Any = LinearShap(coef=clf.coef_[0].copy(), intercept=float(clf.intercept_[0]),
                                    mean=np.array(np.mean(bg, 0)).flatten())
    else:
        import shap

        explainer = shap.TreeExplainer(bundle.estimator)
    bundle._explainer = explainer
    return explainer


def _scalar(value: Any) -> float:
    arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    return float(arr[-1])


def shap_explain(bundle: ChurnModelBundle, X: pd.DataFrame) -> ShapExplanation:
    """SHAP contributions of ``bundle``'s model for the rows of ``X`` (log-odds)."""
    M = bundle.matrix(X)
    explainer = _explainer(bundle)
    if bundle.kind == "logistic":
        Z = bundle.estimator[:-1].transform(M.to_numpy())
        values = np.asarray(explainer.shap_values(Z), dtype=np.float64)
        base = _scalar(explainer.expected_value)
        space = "log-odds (signed-log, standardised inputs)"
    else:
        with warnings.catch_warnings(), openmp_threads_for(len(M)):  # shap's additivity check predicts
            warnings.simplefilter("ignore")
            raw = explainer.shap_values(M if bundle.kind == "lightgbm" else M.to_numpy())
        if isinstance(raw, list):
            raw = raw[-1]
        values = np.asarray(raw, dtype=np.float64)
        if values.ndim == 3:
            values = values[:, :, -1]
        base = _scalar(explainer.expected_value)
        space = "raw margin (log-odds)"
    return ShapExplanation(
        base_value=base, values=values, data=M.to_numpy(), feature_names=list(bundle.features),
        index=[str(i) for i in X.index], output_space=space, model_kind=bundle.kind,
    )


def top_contributions(expl: ShapExplanation, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised top-``k`` by |SHAP| per row: (feature indices (n, k), contributions (n, k)), largest first."""
    k = max(1, min(k, expl.values.shape[1]))
    mag = np.abs(expl.values)
    part = np.argpartition(-mag, k - 1, axis=1)[:, :k]
    part_mag = np.take_along_axis(mag, part, axis=1)
    order = np.argsort(-part_mag, axis=1, kind="stable")
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(expl.values, idx, axis=1)


def explain_rows(bundle: ChurnModelBundle, X: pd.DataFrame, top_k: int = 5,
                 proba: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Online explanation: per customer probability, band, base value and top-``k`` contributions.

    ``rest`` is the summed contribution of the other features, so
    ``base_value + Σ contributions + rest`` = ``log_odds``. ``proba`` is ``bundle.predict_proba(X)`` when the
    caller already has it. The per-row work is only building the JSON-able dicts (from plain lists).
    """
    expl = shap_explain(bundle, X)
    idx, vals = top_contributions(expl, top_k)
    out_logit = expl.output().tolist()
    proba = bundle.predict_proba(X) if proba is None else proba
    bands = bundle.bands.assign(proba).tolist()
    rest = (expl.values.sum(axis=1) - vals.sum(axis=1)).tolist()
    values = np.take_along_axis(expl.data, idx, axis=1).tolist()
    described = [(name, FEATURE_DOCS.get(name, {}).get("label", name), FEATURE_DOCS.get(name, {}).get("kind", ""))
                 for name in expl.feature_names]
    base = expl.base_value
    result = []
    for cid, p, band, logit, row_idx, row_vals, row_values, row_rest in zip(
            expl.index, np.asarray(proba, np.float64).tolist(), bands, out_logit, idx.tolist(), vals.tolist(), values,
            rest, strict=True):
        contribs = []
        for j, v, value in zip(row_idx, row_vals, row_values, strict=True):
            name, label, kind = described[j]
            contribs.append({
                "feature": name, "label": label, "kind": kind, "value": value,
                "contribution": v, "direction": "raises risk" if v > 0 else "lowers risk",
            })
        result.append({
            "customer_id": cid, "probability": p, "risk_band": str(band),
            "base_value": base, "log_odds": logit, "output_space": expl.output_space,
            "contributions": contribs, "rest": row_rest,
        })
    return result


def global_importance(expl: ShapExplanation) -> list[dict[str, Any]]:
    """Mean |SHAP| per feature (log-odds units), most important first."""
    mean_abs = np.abs(expl.values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")
    return [
        {"feature": expl.feature_names[j], "label": FEATURE_DOCS.get(expl.feature_names[j], {}).get("label",
                                                                                                  expl.feature_names[j]),
         "mean_abs_shap": float(mean_abs[j])}
        for j in order
    ]


def beeswarm_data(expl: ShapExplanation, max_points: int = 2000, max_features: int | None = None,
                  seed: int = 0) -> dict[str, Any]:
    """Beeswarm data: per feature (by importance) the SHAP values, raw values and value percentiles.

    Rows are subsampled to ``max_points`` (seeded); the colour is the feature value's percentile
    (average rank) among the explained rows, in [0, 100].
    """
    n = expl.values.shape[0]
    rng = np.random.default_rng(seed)
    take = np.sort(rng.choice(n, size=min(n, max_points), replace=False)) if n > max_points else np.arange(n)
    ranks = pd.DataFrame(expl.data).rank(pct=True, method="average").to_numpy() * 100.0
    importance = global_importance(expl)
    if max_features is not None:
        importance = importance[:max_features]
    features = []
    for item in importance:
        j = expl.feature_names.index(item["feature"])
        features.append({
            "feature": item["feature"], "label": item["label"], "mean_abs_shap": item["mean_abs_shap"],
            "shap": expl.values[take, j].astype(float).tolist(),
            "value": expl.data[take, j].astype(float).tolist(),
            "percentile": ranks[take, j].astype(float).tolist(),
        })
    return {"output_space": expl.output_space, "model_kind": expl.model_kind, "n_points": int(take.size),
            "features": features}
