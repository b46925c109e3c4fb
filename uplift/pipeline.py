"""Uplift pipeline (pure: DataFrames/arrays in, fitted objects and metrics out; no Django).

Question answered: *whom would an offer change?* From one past randomised campaign (treated,
converted, revenue per customer) and each customer's features as of the send time, estimate the
effect of contact on the customer's conversion probability (``uplift``) and on revenue in the
outcome window (``revenue_uplift``), with a 95 % interval for the conversion effect.

Learners
--------
* **Causal forest (double ML)** — econml ``CausalForestDML``: nuisance models E[Y|X] (gradient
  boosting) and P(T|X) (logistic regression; the campaign is randomised, so this is close to
  constant) are cross-fitted; the forest is grown on the residuals and gives honest
  per-customer intervals (``effect_interval``). It is grown on top of a prior: a T-learner whose
  arm models blend gradient boosting with a linear model (weights from out-of-fold predictions),
  shrunk towards 0 by the out-of-fold R-learner loss, so the forest estimates only what the prior
  misses (see :class:`ForestEffect`). On small data with smooth responses (IHDP) the prior carries
  the effect; on large campaigns with small effects on 0/1 outcomes the shrinkage is strong and the
  forest does the work.
* **T-learner** — two gradient-boosted models, one per arm; effect = μ₁(x) − μ₀(x). The interval
  comes from a bootstrap of the two arms (percentiles of ``bootstrap`` refits). Always fitted as
  the challenger, and the fallback when econml fails or the data are too small for a forest.

Both learners are fitted on a training part and compared on a **held-out part stratified by arm
and outcome** (``holdout_share``): the one with the higher held-out Qini coefficient is
promoted. The baseline (conversion probability *without* contact) comes from a gradient-boosted
model of the control arm, shared by both.

Curves and the one normalisation (shown on the page)
----------------------------------------------------
Customers are ranked by a score (highest first); at a share φ of the population targeted, with
R_t, R_c the converters and N_t, N_c the customers of each arm among the targeted, N everyone:

* Qini curve      Q(φ) = (R_t − R_c · N_t / N_c) / N
* uplift curve    U(φ) = (R_t / N_t − R_c / N_c) · (N_t + N_c) / N  (cumulative gain)

Both are in *incremental conversions per customer of the whole population*; the random line
goes straight from (0, 0) to (1, Q(1)). **Qini coefficient** = area between the Qini curve and
the random line, **AUUC** = area between the uplift curve and its random line, both over
φ ∈ [0, 1] (trapezoids at every distinct score). 0 = no better than random; ties in the score
are treated as one block (as scikit-uplift does).

Groups (from the conversion effect's 95 % interval and the baseline)
--------------------------------------------------------------------
persuadable: interval above 0; sleeping dog: interval below 0 (contact hurts); otherwise sure
thing when the baseline ≥ ``sure_thing_baseline`` (buys anyway), else lost cause.

Profit
------
expected incremental profit = revenue_uplift × margin − contact_cost − incentive_cost × P(buy | contacted),
with P(buy | contacted) = clip(baseline + uplift, 0, 1): the incentive is paid only when redeemed.
Recommendation: contact when that profit is > 0 and the customer is not a sleeping dog.

Threads: the gradient-boosting fits and predictions run with one OpenMP thread (``threadpool_limits``).
On a shared 2-core machine OpenMP's spinning threads made the T-learner's bootstrap ~30× slower
(118 s instead of 4 s on 2,600 customers); the forest parallelises over trees with ``n_jobs``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from rfm_portal.customers.features import FEATURE_COLUMNS
from rfm_portal.mlops.group_metrics import DEFAULT_BOOT, DEFAULT_MIN_ROWS, GroupRule
from rfm_portal.mlops.group_metrics import group_performance as group_metrics

LearnerKind = Literal["causal_forest", "t_learner"]
LEARNER_LABELS: dict[str, str] = {"causal_forest": "Causal forest (double ML)", "t_learner": "T-learner (two GBMs)"}
GROUPS: tuple[str, ...] = ("persuadable", "sure_thing", "lost_cause", "sleeping_dog")
GROUP_LABELS: dict[str, str] = {"persuadable": "Persuadables", "sure_thing": "Sure things",
                                "lost_cause": "Lost causes", "sleeping_dog": "Sleeping dogs"}
NORMALISATION = (
    "Curves are in incremental conversions per customer of the whole population: Qini Q(φ) = (R_t − R_c·N_t/N_c)/N "
    "and uplift U(φ) = (R_t/N_t − R_c/N_c)·(N_t+N_c)/N at a share φ targeted (highest score first). "
    "Qini coefficient and AUUC are the areas between each curve and the straight random-targeting line from "
    "(0, 0) to (1, curve end), over φ from 0 to 1; 0 means no better than random."
)


class UpliftError(ValueError):
    """The campaign cannot support an uplift model (empty or tiny arm, no features, …): a clear message."""


@dataclass(frozen=True)
class ProfitInputs:
    contact_cost: float = 0.5
    incentive_cost: float = 5.0
    margin: float = 0.3

    def validated(self) -> ProfitInputs:
        for name, value in asdict(self).items():
            if not np.isfinite(value) or value < 0:
                raise UpliftError(f"{name} must be a finite number ≥ 0, got {value}")
        if self.margin > 1:
            raise UpliftError(f"margin is a share of revenue and must be within [0, 1], got {self.margin}")
        return self


@dataclass(frozen=True)
class UpliftConfig:
    holdout_share: float = 0.3
    min_arm: int = 100  # customers per arm (whole campaign); fewer → refuse
    min_forest_train: int = 600  # training customers needed for the causal forest; fewer → T-learner only
    forest_trees: int = 200  # multiple of 4 (econml grows sub-forests of 4)
    forest_min_leaf: int = 20
    forest_max_depth: int | None = None
    nuisance_cv: int = 3
    forest_prior: bool = True  # grow the forest on a stacked T-learner prior (ForestEffect)
    prior_folds: int = 5  # out-of-fold predictions for the prior's stacking weights and its R-loss shrinkage
    gbm_iter: int = 150
    gbm_leaves: int = 15
    gbm_learning_rate: float = 0.06
    gbm_min_leaf: int = 40
    bootstrap: int = 20  # T-learner interval refits
    alpha: float = 0.05  # 95 % intervals
    sure_thing_baseline: float = 0.5
    n_jobs: int = 2
    random_state: int = 0
    learners: tuple[str, ...] = ("causal_forest", "t_learner")


# ---------------------------------------------------------------------------------------------
# evaluation: Qini / uplift curves, coefficients, deciles, profit
# ---------------------------------------------------------------------------------------------


def _ranked_cumulative(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cumulative (n_t, n_c, r_t, r_c) at the end of every block of equal scores, best first."""
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    if not (len(y) == len(t) == len(score)):
        raise ValueError("y, treatment and score must have the same length")
    order = np.argsort(-score, kind="mergesort")
    y, t, s = y[order], t[order], score[order]
    ends = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1] if len(s) else np.array([], dtype=np.int64)
    n_t, n_c = np.cumsum(t)[ends], np.cumsum(~t)[ends]
    r_t, r_c = np.cumsum(y * t)[ends], np.cumsum(y * ~t)[ends]
    return n_t.astype(float), n_c.astype(float), r_t, r_c


def qini_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share targeted φ, Q(φ)) starting at (0, 0); Q in incremental conversions per customer."""
    n_t, n_c, r_t, r_c = _ranked_cumulative(y, t, score)
    n = len(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(n_c > 0, r_t - r_c * n_t / n_c, r_t)
    return np.r_[0.0, (n_t + n_c) / n], np.r_[0.0, q / n]


def uplift_curve(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(share targeted φ, U(φ)); U = (R_t/N_t − R_c/N_c)·(N_t+N_c)/N, 0 where an arm is still empty."""
    n_t, n_c, r_t, r_c = _ranked_cumulative(y, t, score)
    n = len(y)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.where((n_t > 0) & (n_c > 0), (r_t / n_t - r_c / n_c) * (n_t + n_c), 0.0)
    return np.r_[0.0, (n_t + n_c) / n], np.r_[0.0, u / n]


def area_above_random(x: np.ndarray, y: np.ndarray) -> float:
    """∫₀¹ curve − the straight line from (0, 0) to (1, y_end) (trapezoids)."""
    if len(x) < 2:
        return 0.0
    return float(np.trapezoid(y, x) - y[-1] / 2.0)


def qini_coefficient(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    return area_above_random(*qini_curve(y, t, score))


def auuc(y: np.ndarray, t: np.ndarray, score: np.ndarray) -> float:
    return area_above_random(*uplift_curve(y, t, score))


def uplift_at(y: np.ndarray, t: np.ndarray, score: np.ndarray, share: float) -> float:
    """Observed treated − control conversion rate among the top ``share`` by score."""
    k = max(round(share * len(y)), 1)
    top = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")[:k]
    yt, tt = np.asarray(y, float)[top], np.asarray(t).astype(bool)[top]
    if tt.sum() == 0 or (~tt).sum() == 0:
        return float("nan")
    return float(yt[tt].mean() - yt[~tt].mean())


def _wilson(k: float, n: float, z: float = 1.96) -> tuple[float, float]:
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(centre - half), float(centre + half)


def decile_table(y: np.ndarray, t: np.ndarray, score: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per decile of predicted uplift (1 = highest): observed conversion of each arm with 95 % Wilson
    intervals, and the observed uplift with a normal-approximation 95 % interval."""
    y = np.asarray(y, float)
    t = np.asarray(t).astype(bool)
    order = np.argsort(-np.asarray(score, float), kind="mergesort")
    rows = []
    for d, idx in enumerate(np.array_split(order, bins), start=1):
        yt, yc = y[idx][t[idx]], y[idx][~t[idx]]
        pt = float(yt.mean()) if len(yt) else float("nan")
        pc = float(yc.mean()) if len(yc) else float("nan")
        se = float(np.sqrt(pt * (1 - pt) / max(len(yt), 1) + pc * (1 - pc) / max(len(yc), 1)))
        rows.append({
            "decile": d, "n_treated": len(yt), "n_control": len(yc),
            "treated_rate": pt, "treated_ci": _wilson(yt.sum(), len(yt)),
            "control_rate": pc, "control_ci": _wilson(yc.sum(), len(yc)),
            "uplift": pt - pc, "uplift_ci": (pt - pc - 1.96 * se, pt - pc + 1.96 * se),
            "predicted_uplift": float(np.mean(np.asarray(score, float)[idx])),
        })
    return rows


def profit_curve(
    converted: np.ndarray, revenue: np.ndarray, t: np.ndarray, score: np.ndarray, inputs: ProfitInputs,
    points: int = 101,
) -> tuple[np.ndarray, np.ndarray]:
    """Observed incremental profit per customer of the population when targeting the top φ by ``score``.

    In the targeted set S: |S| × [margin × (mean revenue treated − mean revenue control)
    − contact_cost − incentive_cost × conversion rate treated], divided by N (arms estimated from the
    held-out campaign). φ on a grid of ``points`` shares.
    """
    conv = np.asarray(converted, float)
    rev = np.asarray(revenue, float)
    tt = np.asarray(t).astype(bool)
    order = np.argsort(-np.asarray(score, float), kind="mergesort")
    conv, rev, tt = conv[order], rev[order], tt[order]
    n = len(conv)
    c_t, c_c = np.cumsum(tt), np.cumsum(~tt)
    rv_t, rv_c = np.cumsum(rev * tt), np.cumsum(rev * ~tt)
    cv_t = np.cumsum(conv * tt)
    shares = np.linspace(0.0, 1.0, points)
    out = np.zeros(points)
    for i, phi in enumerate(shares):
        k = round(phi * n)
        if k == 0:
            continue
        nt, nc = c_t[k - 1], c_c[k - 1]
        if nt == 0 or nc == 0:
            continue
        d_rev = rv_t[k - 1] / nt - rv_c[k - 1] / nc
        out[i] = k * (inputs.margin * d_rev - inputs.contact_cost - inputs.incentive_cost * cv_t[k - 1] / nt) / n
    return shares, out


# ---------------------------------------------------------------------------------------------
# learners
# ---------------------------------------------------------------------------------------------


def _gbm(binary: bool, cfg: UpliftConfig, seed: int) -> Any:
    kw = {"max_iter": cfg.gbm_iter, "max_leaf_nodes": cfg.gbm_leaves, "learning_rate": cfg.gbm_learning_rate,
          "min_samples_leaf": cfg.gbm_min_leaf, "early_stopping": False, "random_state": seed}
    return HistGradientBoostingClassifier(**kw) if binary else HistGradientBoostingRegressor(**kw)


def _predict_mean(model: Any, X: np.ndarray, binary: bool) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if binary else model.predict(X)


class _ConstantModel:
    """μ(x) = the arm's mean (when an arm has one class only, a classifier cannot be fitted)."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.full(len(X), self.value)
        return np.c_[1 - p, p]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.full(len(X), self.value)


def _fit_arm(X: np.ndarray, y: np.ndarray, binary: bool, cfg: UpliftConfig, seed: int) -> Any:
    if binary and len(np.unique(y)) < 2:
        return _ConstantModel(float(np.mean(y)) if len(y) else 0.0)
    return _gbm(binary, cfg, seed).fit(X, y)


class TLearnerEffect:
    """τ(x) = μ₁(x) − μ₀(x) with one gradient-boosted model per arm; bootstrap percentile interval."""

    kind = "t_learner"

    def __init__(self, cfg: UpliftConfig, binary: bool, with_interval: bool = True) -> None:
        self.cfg, self.binary, self.with_interval = cfg, binary, with_interval
        self.mu0: Any = None
        self.mu1: Any = None
        self.boot: list[tuple[Any, Any]] = []

    def fit(self, X: np.ndarray, t: np.ndarray, y: np.ndarray) -> TLearnerEffect:
        t = np.asarray(t).astype(bool)
        seed = self.cfg.random_state
        self.mu0 = _fit_arm(X[~t], y[~t], self.binary, self.cfg, seed)
        self.mu1 = _fit_arm(X[t], y[t], self.binary, self.cfg, seed + 1)
        self.boot = []
        if self.with_interval:
            rng = np.random.default_rng(seed)
            i0, i1 = np.flatnonzero(~t), np.flatnonzero(t)
            for b in range(self.cfg.bootstrap):
                s0, s1 = rng.choice(i0, len(i0)), rng.choice(i1, len(i1))
                self.boot.append((_fit_arm(X[s0], y[s0], self.binary, self.cfg, seed + 2 + b),
                                  _fit_arm(X[s1], y[s1], self.binary, self.cfg, seed + 3 + b)))
        return self

    def effect(self, X: np.ndarray) -> np.ndarray:
        return _predict_mean(self.mu1, X, self.binary) - _predict_mean(self.mu0, X, self.binary)

    def effect_interval(self, X: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        if not self.boot:
            e = self.effect(X)
            return e, e
        draws = np.stack([_predict_mean(m1, X, self.binary) - _predict_mean(m0, X, self.binary)
                          for m0, m1 in self.boot])
        return np.quantile(draws, alpha / 2, axis=0), np.quantile(draws, 1 - alpha / 2, axis=0)


class StackedArmModel:
    """μ(x) of one arm: a convex blend of a gradient-boosted model and a linear model (ridge for revenue,
    logistic for conversion), weighted by non-negative least squares on out-of-fold predictions.

    Boosting captures interactions on large campaigns; the linear model extrapolates smooth responses that
    a few hundred customers cannot teach a tree ensemble. ``oof_`` keeps the out-of-fold predictions
    (every training row predicted by a model that did not see it), used by :class:`ForestEffect`.
    """

    def __init__(self, binary: bool, cfg: UpliftConfig, seed: int) -> None:
        self.binary, self.cfg, self.seed = binary, cfg, seed
        self.weights = np.array([1.0, 0.0])
        self.models: list[Any] = []
        self.oof_: np.ndarray = np.array([])

    def _members(self) -> list[Any]:
        linear = (make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)) if self.binary
                  else make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))))
        return [_gbm(self.binary, self.cfg, self.seed), linear]

    def fit(self, X: np.ndarray, y: np.ndarray) -> StackedArmModel:
        smallest = np.unique(y, return_counts=True)[1].min() if self.binary and len(y) else len(y)
        if (self.binary and len(np.unique(y)) < 2) or smallest < 2 * self.cfg.prior_folds:
            self.models, self.weights = [_fit_arm(X, y, self.binary, self.cfg, self.seed)], np.array([1.0])
            self.oof_ = np.full(len(y), float(np.mean(y)) if len(y) else 0.0)
            return self
        folds = (StratifiedKFold if self.binary else KFold)(self.cfg.prior_folds, shuffle=True, random_state=self.seed)
        oof = np.zeros((len(y), 2))
        for tr, te in folds.split(X, y):
            for j, member in enumerate(self._members()):
                oof[te, j] = _predict_mean(member.fit(X[tr], y[tr]), X[te], self.binary)
        w, _ = nnls(oof, np.asarray(y, float))
        self.weights = w / w.sum() if w.sum() > 0 else np.full(2, 0.5)
        self.oof_ = oof @ self.weights
        self.models = [m.fit(X, y) for m, wj in zip(self._members(), self.weights, strict=True) if wj > 0]
        self.weights = self.weights[self.weights > 0]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([_predict_mean(m, X, self.binary) for m in self.models]) @ self.weights


class ForestEffect:
    """econml CausalForestDML with cross-fitted nuisances, grown on top of a stacked T-learner prior.

    1. Prior τ̂ₚ(x) = μ̂₁(x) − μ̂₀(x), one :class:`StackedArmModel` per arm; out-of-fold τ̂ₚ for every
       training row (its own arm's model from the other folds; the other arm's model never saw it).
    2. Shrinkage λ ∈ [0, 1] of the prior by the R-learner loss on out-of-fold quantities (estimable without
       the true effects): λ = Σ T̃·Ỹ·τ̂ₚ / Σ (T̃·τ̂ₚ)², Ỹ = Y − m̂(x), T̃ = T − ê(x), m̂ = ê·μ̂₁ + (1 − ê)·μ̂₀.
       A noisy prior (small effects on 0/1 outcomes) gets λ near 0 and the forest does the work; a prior
       that explains the effect (smooth responses, small n) gets λ near 1.
    3. The causal forest estimates the rest, δ(x) = τ(x) − λ·τ̂ₚ(x), on Y − λ·T·τ̂ₚ(x) (out-of-fold prior).

    Effect = λ·τ̂ₚ(x) + δ̂(x); the 95 % interval is the forest's honest interval for δ shifted by λ·τ̂ₚ(x) —
    it does not include the prior's own sampling error (small when λ is small).
    """

    kind = "causal_forest"

    def __init__(self, cfg: UpliftConfig, binary: bool) -> None:
        self.cfg, self.binary = cfg, binary
        self.est: Any = None
        self.prior: tuple[StackedArmModel, StackedArmModel] | None = None
        self.shrinkage = 0.0

    def _fit_prior(self, X: np.ndarray, t: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Fit the stacked T-learner prior and λ; return λ·τ̂ₚ out of fold for the training rows."""
        cfg = self.cfg
        arm0 = StackedArmModel(self.binary, cfg, cfg.random_state + 11).fit(X[~t], y[~t])
        arm1 = StackedArmModel(self.binary, cfg, cfg.random_state + 12).fit(X[t], y[t])
        mu0, mu1 = arm0.predict(X), arm1.predict(X)
        mu0[~t], mu1[t] = arm0.oof_, arm1.oof_
        tau = mu1 - mu0
        e = cross_val_predict(make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), X, t.astype(int),
                              cv=StratifiedKFold(cfg.prior_folds, shuffle=True, random_state=cfg.random_state),
                              method="predict_proba")[:, 1]
        e = np.clip(e, 0.01, 0.99)
        t_res, y_res = t.astype(float) - e, y - (e * mu1 + (1 - e) * mu0)
        den = float(np.sum((t_res * tau) ** 2))
        self.shrinkage = float(np.clip(np.sum(t_res * y_res * tau) / den, 0.0, 1.0)) if den > 0 else 0.0
        self.prior = (arm0, arm1)
        return self.shrinkage * tau

    def _prior_effect(self, X: np.ndarray) -> np.ndarray:
        prior = getattr(self, "prior", None)  # versions trained before the prior existed have none
        if prior is None or self.shrinkage == 0:
            return np.zeros(len(X))
        return self.shrinkage * (prior[1].predict(X) - prior[0].predict(X))

    def fit(self, X: np.ndarray, t: np.ndarray, y: np.ndarray) -> ForestEffect:
        from econml.dml import CausalForestDML  # imported lazily: heavy, and the fallback must survive its failure

        cfg = self.cfg
        t = np.asarray(t).astype(bool)
        y = np.asarray(y, float)
        offset = self._fit_prior(X, t, y) if cfg.forest_prior else np.zeros(len(y))
        trees = max(4, cfg.forest_trees - cfg.forest_trees % 4)
        self.est = CausalForestDML(
            model_y=_gbm(False, cfg, cfg.random_state),  # E[Y|X] by regression also for a 0/1 outcome
            model_t=make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
            discrete_treatment=True, cv=cfg.nuisance_cv, n_estimators=trees, min_samples_leaf=cfg.forest_min_leaf,
            max_depth=cfg.forest_max_depth, inference=True, n_jobs=cfg.n_jobs, random_state=cfg.random_state,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.est.fit(y - t * offset, t.astype(int), X=X)
        return self

    def effect(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.est.effect(X), float).ravel() + self._prior_effect(X)

    def effect_interval(self, X: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.est.effect_interval(X, alpha=alpha)
        prior = self._prior_effect(X)
        return np.asarray(lo, float).ravel() + prior, np.asarray(hi, float).ravel() + prior


def make_effect(kind: str, cfg: UpliftConfig, binary: bool, with_interval: bool = True) -> Any:
    if kind == "causal_forest":
        return ForestEffect(cfg, binary)
    if kind == "t_learner":
        return TLearnerEffect(cfg, binary, with_interval=with_interval)
    raise ValueError(f"unknown learner {kind!r}")


# ---------------------------------------------------------------------------------------------
# the served bundle
# ---------------------------------------------------------------------------------------------


def assign_groups(low: np.ndarray, high: np.ndarray, baseline: np.ndarray, sure_thing_baseline: float) -> np.ndarray:
    low, high, baseline = (np.asarray(a, float) for a in (low, high, baseline))
    return np.where(low > 0, "persuadable", np.where(high < 0, "sleeping_dog",
                    np.where(baseline >= sure_thing_baseline, "sure_thing", "lost_cause"))).astype(object)


def expected_profit(revenue_uplift: np.ndarray, uplift: np.ndarray, baseline: np.ndarray,
                    inputs: ProfitInputs) -> np.ndarray:
    p_contacted = np.clip(np.asarray(baseline, float) + np.asarray(uplift, float), 0.0, 1.0)
    return (np.asarray(revenue_uplift, float) * inputs.margin - inputs.contact_cost
            - inputs.incentive_cost * p_contacted)


REASONS = {
    "sleeping_dog": "contact lowers the chance this customer buys (effect confidently below 0)",
    "persuadable": "contact raises the chance to buy by {u:+.1%}",
    "sure_thing": "likely to buy anyway ({b:.0%} without contact); no clear effect of contact",
    "lost_cause": "unlikely to buy either way ({b:.0%} without contact); no clear effect of contact",
}


COUNTRY_PREFIX = "country="  # one-hot country inputs, only when settings.MODELS_USE_COUNTRY is on (off by default)


def with_country_columns(X: pd.DataFrame, countries: list[str]) -> pd.DataFrame:
    """``X`` plus a 0/1 column ``country=<name>`` per country (all 0 when X has no ``country``)."""
    known = X["country"].fillna("").astype(str) if "country" in X.columns else pd.Series("", index=X.index)
    return X.assign(**{f"{COUNTRY_PREFIX}{c}": (known == c).to_numpy(dtype=np.float64) for c in countries})


def common_countries(countries: pd.Series, min_share: float = 0.01) -> list[str]:
    """Countries of at least ``min_share`` of the customers (rarer ones share the all-zero baseline)."""
    share = countries.fillna("").astype(str).value_counts(normalize=True)
    return sorted(c for c, s in share.items() if c and s >= min_share)


@dataclass
class UpliftModel:
    """What is stored and served: effect estimators + control-arm baseline + the group rule."""

    learner: str
    features: list[str]
    conversion: Any
    revenue: Any
    baseline_model: Any
    alpha: float
    sure_thing_baseline: float
    profit_defaults: ProfitInputs
    metrics: dict[str, Any] = field(default_factory=dict)
    holdout: pd.DataFrame | None = None  # held-out outcomes + scores, to redraw profit curves for new inputs

    def _X(self, X: pd.DataFrame) -> np.ndarray:
        countries = [f[len(COUNTRY_PREFIX):] for f in self.features if f.startswith(COUNTRY_PREFIX)]
        if countries and any(f"{COUNTRY_PREFIX}{c}" not in X.columns for c in countries):
            X = with_country_columns(X, countries)
        missing = [f for f in self.features if f not in X.columns]
        if missing:
            raise UpliftError(f"features missing: {', '.join(missing)}")
        return X[self.features].to_numpy(dtype=np.float64)

    def score(self, X: pd.DataFrame, inputs: ProfitInputs | None = None) -> pd.DataFrame:
        """Per row of ``X``: uplift (+ 95 % interval), baseline, revenue_uplift, group, expected_profit,
        recommendation and a one-line reason. Index preserved."""
        with threadpool_limits(limits=1, user_api="openmp"):
            return self._score(X, (inputs or self.profit_defaults).validated())

    def _score(self, X: pd.DataFrame, inputs: ProfitInputs) -> pd.DataFrame:
        cols = ["uplift", "uplift_low", "uplift_high", "baseline", "revenue_uplift", "group", "expected_profit",
                "recommendation", "reason"]
        if not len(X):
            return pd.DataFrame(columns=cols, index=X.index)
        A = self._X(X)
        u = self.conversion.effect(A)
        lo, hi = self.conversion.effect_interval(A, self.alpha)
        lo, hi = np.minimum(lo, u), np.maximum(hi, u)
        base = np.clip(_predict_mean(self.baseline_model, A, True), 0.0, 1.0)
        rev = self.revenue.effect(A)
        groups = assign_groups(lo, hi, base, self.sure_thing_baseline)
        profit = expected_profit(rev, u, base, inputs)
        contact = (profit > 0) & (groups != "sleeping_dog")
        reasons = []
        for g, ui, bi, pi, c in zip(groups, u, base, profit, contact, strict=True):
            r = REASONS[g].format(u=ui, b=bi)
            if g != "sleeping_dog":
                r += f"; expected incremental profit {pi:+.2f} per contact" + ("" if c else " (below 0)")
            reasons.append(r[0].upper() + r[1:] + ".")
        return pd.DataFrame({
            "uplift": u, "uplift_low": lo, "uplift_high": hi, "baseline": base, "revenue_uplift": rev,
            "group": groups, "expected_profit": profit,
            "recommendation": np.where(contact, "contact", "dont_contact").astype(object), "reason": reasons,
        }, index=X.index)


# ---------------------------------------------------------------------------------------------
# checks and training
# ---------------------------------------------------------------------------------------------


def campaign_checks(frame: pd.DataFrame, features: list[str], cfg: UpliftConfig) -> dict[str, Any]:
    """Arm sizes, treatment share, conversion per arm and covariate balance (standardised differences).

    Raises :class:`UpliftError` when an arm is empty or smaller than ``cfg.min_arm``.
    """
    t = frame["treated"].to_numpy().astype(bool)
    n_t, n_c = int(t.sum()), int((~t).sum())
    if n_t == 0 or n_c == 0:
        raise UpliftError(f"The campaign has {'no treated' if n_t == 0 else 'no control'} customers (treated {n_t:,}, "
                          f"control {n_c:,}): uplift needs both a contacted and a held-back group.")
    if min(n_t, n_c) < cfg.min_arm:
        raise UpliftError(f"The campaign's arms are too small (treated {n_t:,}, control {n_c:,}); at least "
                          f"{cfg.min_arm:,} customers per arm are needed for a trustworthy uplift model.")
    balance = []
    for f in features:
        x = frame[f].to_numpy(dtype=float)
        a, b = x[t], x[~t]
        pooled = np.sqrt((a.var(ddof=1) + b.var(ddof=1)) / 2) if len(a) > 1 and len(b) > 1 else 0.0
        smd = float((a.mean() - b.mean()) / pooled) if pooled > 0 else 0.0
        balance.append({"feature": f, "treated_mean": float(a.mean()), "control_mean": float(b.mean()),
                        "smd": smd, "balanced": abs(smd) < 0.1})
    y = frame["converted"].to_numpy(dtype=float)
    rev = frame["revenue"].to_numpy(dtype=float)
    return {
        "n": len(frame), "n_treated": n_t, "n_control": n_c, "treatment_share": n_t / len(frame),
        "conversion_treated": float(y[t].mean()), "conversion_control": float(y[~t].mean()),
        "ate_conversion": float(y[t].mean() - y[~t].mean()),
        "revenue_treated": float(rev[t].mean()), "revenue_control": float(rev[~t].mean()),
        "balance": balance, "max_abs_smd": max((abs(r["smd"]) for r in balance), default=0.0),
    }


@dataclass
class UpliftTrainingResult:
    models: dict[str, UpliftModel]  # learner → fitted bundle
    champion: str
    reason: str
    checks: dict[str, Any]
    evaluation: dict[str, Any]  # learner/naive rule → metrics + curves on the holdout
    holdout_index: pd.Index
    timings: dict[str, float]
    failures: dict[str, str]


def _curve_payload(y: np.ndarray, t: np.ndarray, score: np.ndarray, points: int = 201) -> dict[str, Any]:
    qx, qy = qini_curve(y, t, score)
    ux, uy = uplift_curve(y, t, score)
    grid = np.linspace(0, 1, points)
    return {
        "qini": float(area_above_random(qx, qy)), "auuc": float(area_above_random(ux, uy)),
        "uplift_at": {str(p): uplift_at(y, t, score, p / 100) for p in (10, 20, 30)},
        "qini_curve": {"x": grid.tolist(), "y": np.interp(grid, qx, qy).tolist()},
        "uplift_curve": {"x": grid.tolist(), "y": np.interp(grid, ux, uy).tolist()},
    }


def train_uplift(
    frame: pd.DataFrame,
    cfg: UpliftConfig | None = None,
    churn_risk: Callable[[pd.DataFrame], np.ndarray] | None = None,
    profit: ProfitInputs | None = None,
    features: list[str] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> UpliftTrainingResult:
    """Fit both learners on a training part, compare them on a held-out part (Qini), return both.

    ``frame``: one row per campaign customer, the feature columns + ``treated``, ``converted``,
    ``revenue``. ``churn_risk`` scores the naive "highest churn risk" rule (default: the overdue
    ratio ``gap_ratio``, recency over the usual gap between orders).
    """
    with threadpool_limits(limits=1, user_api="openmp"):
        return _train_uplift(frame, cfg or UpliftConfig(), churn_risk, profit, features, progress)


def _train_uplift(
    frame: pd.DataFrame,
    cfg: UpliftConfig,
    churn_risk: Callable[[pd.DataFrame], np.ndarray] | None,
    profit: ProfitInputs | None,
    features: list[str] | None,
    progress: Callable[[int, str], None] | None,
) -> UpliftTrainingResult:
    profit = (profit or ProfitInputs()).validated()
    features = list(features or FEATURE_COLUMNS)
    say = progress or (lambda p, m: None)
    timings: dict[str, float] = {}
    checks = campaign_checks(frame, features, cfg)
    strata = frame["treated"].astype(int) * 2 + frame["converted"].astype(int)
    if strata.value_counts().min() < 2:
        strata = frame["treated"].astype(int)
    train_idx, hold_idx = train_test_split(frame.index, test_size=cfg.holdout_share, stratify=strata,
                                           random_state=cfg.random_state)
    tr, ho = frame.loc[train_idx], frame.loc[hold_idx]
    Xtr, Xho = tr[features].to_numpy(float), ho[features].to_numpy(float)
    ttr, tho = tr["treated"].to_numpy().astype(bool), ho["treated"].to_numpy().astype(bool)
    ytr, yho = tr["converted"].to_numpy(float), ho["converted"].to_numpy(float)
    rtr = tr["revenue"].to_numpy(float)
    checks["n_train"], checks["n_holdout"] = len(tr), len(ho)

    start = time.perf_counter()
    baseline_model = _fit_arm(Xtr[~ttr], ytr[~ttr], True, cfg, cfg.random_state + 101)
    timings["baseline"] = time.perf_counter() - start

    models: dict[str, UpliftModel] = {}
    failures: dict[str, str] = {}
    learners = list(cfg.learners)
    if "causal_forest" in learners and len(tr) < cfg.min_forest_train:
        learners.remove("causal_forest")
        failures["causal_forest"] = (f"not fitted: {len(tr):,} training customers, the forest needs "
                                     f"{cfg.min_forest_train:,}; the T-learner serves")
    for i, kind in enumerate(learners):
        say(20 + 30 * i // max(len(learners), 1), f"Fitting the {LEARNER_LABELS[kind]} on {len(tr):,} customers")
        start = time.perf_counter()
        try:
            conv = make_effect(kind, cfg, True).fit(Xtr, ttr, ytr)
            timings[f"{kind}_conversion"] = time.perf_counter() - start
            start = time.perf_counter()
            rev = make_effect(kind, cfg, False, with_interval=False).fit(Xtr, ttr, rtr)
            timings[f"{kind}_revenue"] = time.perf_counter() - start
        except Exception as error:  # econml failing must not stop the fallback
            if kind == "t_learner":
                raise
            failures[kind] = f"failed: {type(error).__name__}: {error}"
            continue
        models[kind] = UpliftModel(learner=kind, features=features, conversion=conv, revenue=rev,
                                   baseline_model=baseline_model, alpha=cfg.alpha,
                                   sure_thing_baseline=cfg.sure_thing_baseline, profit_defaults=profit)

    say(60, "Comparing learners on the held-out customers")
    start = time.perf_counter()
    evaluation: dict[str, Any] = {}
    hold_scores: dict[str, pd.DataFrame] = {}
    for kind, model in models.items():
        s = model.score(ho[features], profit)
        hold_scores[kind] = s
        ev = _curve_payload(yho, tho, s["uplift"].to_numpy())
        ev["deciles"] = decile_table(yho, tho, s["uplift"].to_numpy())
        ev["revenue_qini"] = qini_coefficient(ho["revenue"].to_numpy(float), tho, s["revenue_uplift"].to_numpy())
        px, py = profit_curve(yho, ho["revenue"].to_numpy(float), tho, s["expected_profit"].to_numpy(), profit)
        ev["profit_curve"] = {"x": px.tolist(), "y": py.tolist()}
        ev["groups"] = {g: int((s["group"] == g).sum()) for g in GROUPS}
        evaluation[kind] = ev
    # naive rules a marketer would otherwise use
    buyers = _fit_arm(Xtr, ytr, True, cfg, cfg.random_state + 202)
    p_buy = _predict_mean(buyers, Xho, True)
    risk = np.asarray(churn_risk(ho[features]), float) if churn_risk is not None else ho["gap_ratio"].to_numpy(float)
    for name, score in (("most_likely_buyers", p_buy), ("highest_churn_risk", risk)):
        ev = _curve_payload(yho, tho, score)
        px, py = profit_curve(yho, ho["revenue"].to_numpy(float), tho, score, profit)
        ev["profit_curve"] = {"x": px.tolist(), "y": py.tolist()}
        evaluation[name] = ev
    rng = np.random.default_rng(cfg.random_state)
    evaluation["random"] = _curve_payload(yho, tho, rng.random(len(ho)))
    timings["evaluation"] = time.perf_counter() - start

    ranked = sorted(models, key=lambda k: evaluation[k]["qini"], reverse=True)
    champion = ranked[0]
    if len(ranked) > 1:
        other = ranked[1]
        reason = (f"{LEARNER_LABELS[champion]} has the higher held-out Qini coefficient "
                  f"({evaluation[champion]['qini']:.4f} vs {evaluation[other]['qini']:.4f})")
    else:
        reason = f"only the {LEARNER_LABELS[champion]} was fitted ({'; '.join(failures.values()) or 'by choice'})"
    for kind, model in models.items():
        model.metrics = {"holdout": {k: v for k, v in evaluation[kind].items() if not k.endswith("_curve")},
                         "champion": champion, "reason": reason}
    return UpliftTrainingResult(models=models, champion=champion, reason=reason, checks=checks, evaluation=evaluation,
                                holdout_index=pd.Index(hold_idx), timings=timings, failures=failures)


# ---------------------------------------------------------------------------------------------
# IHDP (econml's bundled semi-synthetic benchmark with true effects)
# ---------------------------------------------------------------------------------------------


# Small-data settings for IHDP's 747 children (139 treated): smaller GBM leaves and fewer rounds than the
# campaign default; the forest keeps the campaign default leaf (20). Chosen on draws 10–21, not 0–5.
IHDP_CONFIG = UpliftConfig(gbm_min_leaf=10, gbm_iter=100, bootstrap=0)


def ihdp_benchmark(seed: int = 0, cfg: UpliftConfig | None = None) -> dict[str, dict[str, float]]:
    """√PEHE and |ATE error| of both learners on IHDP response surface B (Hill 2011), in-sample.

    econml ships the covariates; the outcome and true effects are simulated from ``seed``.
    """
    from econml.data.dgps import ihdp_surface_B

    cfg = cfg or IHDP_CONFIG
    Y, T, X, tau = ihdp_surface_B(random_state=seed)
    out: dict[str, dict[str, float]] = {}
    for kind in ("causal_forest", "t_learner"):
        with threadpool_limits(limits=1, user_api="openmp"):
            est = make_effect(kind, cfg, binary=False, with_interval=False).fit(np.asarray(X, float), T, Y)
            e = est.effect(np.asarray(X, float))
        out[kind] = {"sqrt_pehe": float(np.sqrt(np.mean((e - tau) ** 2))),
                     "ate_error": float(abs(e.mean() - tau.mean())), "n": len(Y)}
    return out


def oracle_share(y: np.ndarray, t: np.ndarray, score: np.ndarray, true_uplift: np.ndarray) -> float:
    """The model's observed Qini over the Qini of the ranking by the true effect (same outcomes)."""
    oracle = qini_coefficient(y, t, true_uplift)
    return float(qini_coefficient(y, t, score) / oracle) if oracle > 0 else float("nan")


def summarise_timings(timings: Mapping[str, float]) -> dict[str, float]:
    return {k: round(float(v), 3) for k, v in timings.items()}


GROUP_QINI_MIN_MARGIN = 0.002


def group_performance(converted: np.ndarray, treated: np.ndarray, uplift_score: np.ndarray,
                      groupings: Mapping[str, Any], min_rows: int = DEFAULT_MIN_ROWS, n_boot: int = DEFAULT_BOOT,
                      seed: int = 0) -> dict[str, Any]:
    """Qini coefficient per country / RFM segment on the held-out split, with bootstrap 95 % intervals.

    The Qini of a group ranks that group's held-out customers by predicted uplift (undefined when an arm is
    missing from it or nobody in it converted). Flag rule: the group's interval lies entirely below the
    typical group's Qini by more than half the overall Qini (at least :data:`GROUP_QINI_MIN_MARGIN`) — Qini values
    scale with the campaign's effect, so the margin is relative. Extras: the observed uplift (treated −
    control conversion) and the mean predicted uplift of the group.
    """
    y = np.asarray(converted, dtype=float)
    t = np.asarray(treated).astype(bool)
    s = np.asarray(uplift_score, dtype=float)

    def qini(rows: np.ndarray) -> float:
        if not (t[rows].any() and (~t[rows]).any()) or not y[rows].any():
            return float("nan")  # an arm missing, or nobody converted: there is no ranking to judge
        return qini_coefficient(y[rows], t[rows], s[rows])

    def observed(rows: np.ndarray) -> float:
        tr, co = rows[t[rows]], rows[~t[rows]]
        return float(y[tr].mean() - y[co].mean()) if len(tr) and len(co) else float("nan")

    overall = qini(np.arange(len(y))) if len(y) else float("nan")
    margin = max(0.5 * abs(overall), GROUP_QINI_MIN_MARGIN) if np.isfinite(overall) else GROUP_QINI_MIN_MARGIN
    rule = GroupRule("qini", "Qini coefficient", higher_is_better=True, margin=round(margin, 4), min_rows=min_rows,
                     n_boot=n_boot, seed=seed)
    return group_metrics(qini, len(y), groupings, rule,
                         extras={"observed_uplift": observed,
                                 "mean_predicted_uplift": lambda rows: float(s[rows].mean()) if len(rows) else
                                 float("nan")})
