"""Counterfactuals: the smallest plausible change a campaign could make that brings churn risk below the threshold.

Only *actionable* features move (``ACTIONABLE_FEATURES``: recency and the recency/usual-gap
ratio, frequency, net revenue, 90-day orders and spend and their trends); country, tenure,
returns history, category breadth, p_alive and the gap statistics stay as they are. Plausible
bounds per customer (raw units):

* ``recency_days`` and ``gap_ratio`` ∈ [0, current] — only a new purchase moves them, at most
  down to 0;
* ``frequency``, ``purchases_90d``, ``purchases_trend`` ∈ {current, …, current + N} (whole
  orders, N = ``max_extra_purchases``, default 3);
* ``monetary``, ``spend_90d``, ``spend_trend`` ∈ [current, max(current, P99 of training)] —
  spend only grows, and not beyond what the top 1 % of customers reach.

These are feature-space counterfactuals: the coordinates move independently inside their
bounds (e.g. ``gap_ratio`` may fall without ``recency_days`` moving). For a fully consistent
story, :func:`purchase_scenarios` recomputes *every* feature after "k purchases now" with
:func:`rfm_portal.customers.features.apply_purchases` and re-scores it.

Distance is the Euclidean norm in the signed-log, standardised space ``z`` (the logistic
model's own input space; the same transform with training statistics for the trees), so one
extra order weighs the same for both models.

Logistic model (exact). With ``logit = b + w·z`` and target ``t = logit(threshold) − margin``,
the minimal-L2 change along the actionable coordinates A is the closed form
``Δ_A = (t − logit) · w_A / ||w_A||²``. If it leaves the bounds, the bounded problem
``min ||Δ||² s.t. w_A·Δ ≤ t − logit, lo ≤ Δ ≤ hi`` is solved exactly through its 1-D dual: the
KKT point is ``Δ(λ) = clip(λ·w_A, lo, hi)`` for the λ ≤ 0 where ``w_A·Δ(λ) = t − logit``
(monotone in λ, found by bisection). Whole-order features are then rounded (every floor/ceil
combination is tried, the continuous coordinates re-solved for each, the smallest feasible kept).

Other models (the trees are piecewise constant, so no gradient): a greedy search over plausible
moves — each step takes the single-coordinate move (next recency/ratio level down, +1 order,
+1 average order of spend) with the best probability drop per unit of distance — with a seeded
random search inside the bounds as the fallback; the feasible point is then shrunk coordinate
by coordinate back towards the customer (on a fine grid of each coordinate, in one batch).

Every returned point is re-scored by the model; ``feasible`` is the re-scored probability being
below the threshold. When nothing plausible suffices the answer says so.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rfm_portal.customers.features import ACTIONABLE_FEATURES, FEATURE_DOCS, INTEGER_FEATURES, apply_purchases

if TYPE_CHECKING:
    from churn.pipeline import ChurnModelBundle

SPEND_FEATURES: tuple[str, ...] = ("monetary", "spend_90d", "spend_trend")
COUNT_FEATURES: tuple[str, ...] = ("frequency", "purchases_90d", "purchases_trend")
DOWN_FEATURES: tuple[str, ...] = ("recency_days", "gap_ratio")


@dataclass
class Counterfactual:
    """One customer's counterfactual, re-scored by the model."""

    customer_id: str
    model_kind: str
    method: str  # none_needed | closed_form | bounded | search | infeasible
    feasible: bool
    threshold: float
    original_proba: float
    new_proba: float
    changes: list[dict[str, Any]]
    distance: float
    delta_z: dict[str, float]
    original: dict[str, float]
    counterfactual: dict[str, float]
    bounds: dict[str, tuple[float, float]]
    message: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def actionable_in(bundle: ChurnModelBundle) -> list[str]:
    return [f for f in ACTIONABLE_FEATURES if f in bundle.features]


def plausible_bounds(bundle: ChurnModelBundle, row: pd.Series) -> dict[str, tuple[float, float]]:
    """Raw-unit bounds of each actionable feature for this customer (see the module docstring)."""
    n_extra = bundle.max_extra_purchases
    out: dict[str, tuple[float, float]] = {}
    for f in actionable_in(bundle):
        x = float(row[f])
        if f in DOWN_FEATURES:
            out[f] = (0.0, max(x, 0.0))
        elif f in COUNT_FEATURES:
            out[f] = (x, x + n_extra)
        elif f in SPEND_FEATURES:
            out[f] = (x, max(x, bundle.upper_bounds.get(f, x)))
        else:  # pragma: no cover - a new actionable feature without a bound rule
            out[f] = (x, x)
    return out


def _z_coord(bundle: ChurnModelBundle, j: int, raw: float) -> float:
    v = np.zeros((1, len(bundle.features)))
    v[0, j] = raw
    return float(bundle.transform_z(v)[0, j])


def _raw_coord(bundle: ChurnModelBundle, j: int, z: float) -> float:
    v = np.zeros((1, len(bundle.features)))
    v[0, j] = z
    return float(bundle.inverse_z(v)[0, j])


def solve_box_halfspace(w: np.ndarray, need: float, lo: np.ndarray, hi: np.ndarray,
                        iters: int = 200) -> tuple[np.ndarray, bool]:
    """Exact ``argmin ||d||² s.t. w·d ≤ need, lo ≤ d ≤ hi`` (with lo ≤ 0 ≤ hi).

    KKT: d(λ) = clip(λ·w, lo, hi) for a multiplier λ ≤ 0 with w·d(λ) = need; w·d(λ) is monotone
    in λ, so λ is found by bisection. Returns (d, feasible); when even the best corner cannot
    reach ``need`` it returns that corner (the largest possible decrease) and False.
    """
    w = np.asarray(w, np.float64)
    if need >= 0:
        return np.zeros_like(w), True
    corner = np.where(w > 0, lo, hi)
    if float(w @ corner) > need + 1e-12 or not np.any(w):
        return corner, False
    wn = float(w @ w)
    hi_l, lo_l = 0.0, need / wn
    while float(w @ np.clip(lo_l * w, lo, hi)) > need:
        lo_l *= 2.0
    for _ in range(iters):
        mid = 0.5 * (lo_l + hi_l)
        if float(w @ np.clip(mid * w, lo, hi)) > need:
            hi_l = mid
        else:
            lo_l = mid
    return np.clip(lo_l * w, lo, hi), True


def _fmt_money(v: float) -> str:
    return f"{v:,.0f}"


def describe_changes(changes: list[dict[str, Any]]) -> str:
    """Marketer wording of a list of feature changes."""
    parts = []
    names = {c["feature"] for c in changes}
    ratio = next((c for c in changes if c["feature"] == "gap_ratio"), None)
    for c in changes:
        f, a, b = c["feature"], c["from"], c["to"]
        if f == "gap_ratio" and "recency_days" in names:
            continue  # folded into the recency phrase
        if abs(b - a) < (0.05 if f == "gap_ratio" else 0.5):
            continue  # below the precision shown: would read "0 → 0 (+0)"
        if f == "recency_days":
            extra = f" ({ratio['from']:.1f}× → {ratio['to']:.1f}× the usual gap)" if ratio else ""
            parts.append(f"a purchase that brings days since the last order from {a:.0f} to {b:.0f}{extra}")
        elif f == "frequency":
            n = round(b - a)
            parts.append(f"{n} more order{'s' if n != 1 else ''} ({a:.0f} → {b:.0f} in total)")
        elif f == "gap_ratio":
            gap = c.get("usual_gap_days")
            if gap:
                parts.append(f"a purchase so that the time since the last order falls from {a:.1f}× to {b:.1f}× "
                             f"the usual gap of {gap:.0f} days (≈ {a * gap:.0f} → {b * gap:.0f} days)")
            else:
                parts.append(f"time since the last order relative to the usual gap {a:.1f}× → {b:.1f}×")
        elif f == "purchases_90d":
            parts.append(f"orders in the last 90 days {a:.0f} → {b:.0f}")
        elif f == "purchases_trend":
            parts.append(f"90-day order trend {a:+.0f} → {b:+.0f}")
        elif f == "spend_trend":
            parts.append(f"90-day spend trend {a:+,.0f} → {b:+,.0f}")
        elif f == "monetary":
            parts.append(f"net revenue {_fmt_money(a)} → {_fmt_money(b)} (+{_fmt_money(b - a)})")
        elif f == "spend_90d":
            parts.append(f"90-day spend {_fmt_money(a)} → {_fmt_money(b)} (+{_fmt_money(b - a)})")
        else:
            parts.append(f"{FEATURE_DOCS.get(f, {}).get('label', f)} {a:g} → {b:g}")
    if not parts:
        return "no change"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _finish(bundle: ChurnModelBundle, cid: str, row: pd.Series, new_raw: dict[str, float], method: str,
            threshold: float, p0: float, bounds: dict[str, tuple[float, float]], notes: list[str]) -> Counterfactual:
    """Re-score the counterfactual point, compute its distance and phrase it."""
    new_row = row.copy()
    for f, v in new_raw.items():
        new_row[f] = float(v)
    frame = pd.DataFrame([new_row[bundle.features].astype(np.float64)], index=[cid])
    p1 = float(bundle.predict_proba(frame)[0])
    z0 = bundle.transform_z(pd.DataFrame([row[bundle.features].astype(np.float64)]))[0]
    z1 = bundle.transform_z(frame)[0]
    dz = {f: float(z1[j] - z0[j]) for j, f in enumerate(bundle.features) if f in new_raw}
    changes = [
        {"feature": f, "label": FEATURE_DOCS.get(f, {}).get("label", f),
         "unit": FEATURE_DOCS.get(f, {}).get("unit", ""),
         "from": float(row[f]), "to": float(new_raw[f]), "delta": float(new_raw[f] - float(row[f]))}
        for f in actionable_in(bundle) if f in new_raw and abs(float(new_raw[f]) - float(row[f])) > 1e-9
    ]
    for c in changes:
        if c["feature"] == "gap_ratio" and "ipt_mean_days" in row.index:
            c["usual_gap_days"] = max(float(row["ipt_mean_days"]), 1.0)
    feasible = p1 < threshold
    what = describe_changes(changes)
    if feasible:
        message = f"{what[0].upper() + what[1:]} lowers churn risk from {p0:.0%} to {p1:.0%}."
    else:
        message = (
            f"No plausible change brings churn risk below {threshold:.0%}: even {what} "
            f"(the most a campaign can do within bounds) only lowers it from {p0:.0%} to {p1:.0%}."
        )
        method = "infeasible"
    return Counterfactual(
        customer_id=cid, model_kind=bundle.kind, method=method, feasible=feasible, threshold=threshold,
        original_proba=p0, new_proba=p1, changes=changes, distance=float(np.sqrt(sum(v * v for v in dz.values()))),
        delta_z=dz, original={f: float(row[f]) for f in bundle.features},
        counterfactual={f: float(new_row[f]) for f in bundle.features}, bounds=bounds, message=message, notes=notes,
    )


def logistic_counterfactual(bundle: ChurnModelBundle, row: pd.Series, threshold: float | None = None,
                            margin: float = 0.01, round_integers: bool = True) -> Counterfactual:
    """Exact minimal-norm counterfactual for the logistic bundle (closed form, else bounded KKT)."""
    if bundle.kind != "logistic":
        raise ValueError("logistic_counterfactual needs the logistic bundle")
    thr = bundle.threshold if threshold is None else threshold
    cid = str(row.name)
    clf = bundle.estimator.named_steps["clf"]
    w = clf.coef_[0].astype(np.float64)
    b = float(clf.intercept_[0])
    x = row[bundle.features].astype(np.float64).to_numpy()
    z = bundle.transform_z(x[None, :])[0]
    logit0 = b + float(w @ z)
    p0 = _sigmoid(logit0)
    bounds = plausible_bounds(bundle, row)
    if p0 < thr:
        return _finish(bundle, cid, row, {}, "none_needed", thr, p0, bounds, ["already below the threshold"])
    need = (_logit(thr) - margin) - logit0
    A = actionable_in(bundle)
    idx = [bundle.features.index(f) for f in A]
    wA = w[idx]
    lo = np.array([_z_coord(bundle, j, bounds[f][0]) - z[j] for f, j in zip(A, idx, strict=True)])
    hi = np.array([_z_coord(bundle, j, bounds[f][1]) - z[j] for f, j in zip(A, idx, strict=True)])
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    notes: list[str] = []
    wn = float(wA @ wA)
    delta = need * wA / wn if wn > 0 else np.zeros_like(wA)
    tol = 1e-9
    if wn > 0 and np.all(delta >= lo - tol) and np.all(delta <= hi + tol):
        method = "closed_form"
        notes.append("closed form Δ = (t − w·z)·w_A/||w_A||² is within bounds")
    else:
        delta, ok = solve_box_halfspace(wA, need, lo, hi)
        method = "bounded"
        notes.append("closed form left the plausible bounds; "
                     "solved the bounded problem exactly (KKT, 1-D dual bisection)")
        if not ok:
            notes.append("even the bound corner does not reach the threshold")
    new_raw = {f: _raw_coord(bundle, j, z[j] + d) for f, j, d in zip(A, idx, delta, strict=True)}
    int_dims = [k for k, f in enumerate(A) if f in INTEGER_FEATURES]
    if round_integers and int_dims:
        best: tuple[float, dict[str, float]] | None = None
        fallback: tuple[float, dict[str, float]] | None = None
        options = []
        for k in int_dims:
            f = A[k]
            v = min(max(new_raw[f], bounds[f][0]), bounds[f][1])
            options.append(sorted({math.floor(v + 1e-9), math.ceil(v - 1e-9)}))
        cont = [k for k in range(len(A)) if k not in int_dims]
        for combo in itertools.product(*options):
            d = np.zeros(len(A))
            for k, v in zip(int_dims, combo, strict=True):
                d[k] = _z_coord(bundle, idx[k], float(v)) - z[idx[k]]
            rest = need - float(wA[int_dims] @ d[int_dims])
            if cont:
                dc, ok = solve_box_halfspace(wA[cont], rest, lo[cont], hi[cont])
                d[cont] = dc
            else:
                ok = rest >= 0
            cand = {f: _raw_coord(bundle, idx[k], z[idx[k]] + d[k]) for k, f in enumerate(A)}
            for k, v in zip(int_dims, combo, strict=True):
                cand[A[k]] = float(v)
            norm = float(d @ d)
            reach = float(wA @ d)
            if ok and (best is None or norm < best[0]):
                best = (norm, cand)
            if fallback is None or reach < fallback[0]:
                fallback = (reach, cand)
        chosen = best if best is not None else fallback
        assert chosen is not None
        new_raw = chosen[1]
        notes.append("whole-order features rounded (floor/ceil combinations tried, others re-solved)")
    for f in A:  # numerical safety: stay inside the bounds exactly
        new_raw[f] = float(min(max(new_raw[f], bounds[f][0]), bounds[f][1]))
    return _finish(bundle, cid, row, new_raw, method, thr, p0, bounds, notes)


def _step_grid(bundle: ChurnModelBundle, row: pd.Series, f: str, bounds: tuple[float, float], aov: float,
               ) -> np.ndarray:
    """Candidate values of one actionable coordinate, ordered from the customer outwards."""
    x = float(row[f])
    lo, hi = bounds
    if f == "recency_days":
        g = np.array([x, 0.75 * x, 0.5 * x, 0.25 * x, 30.0, 14.0, 7.0, 0.0])
    elif f == "gap_ratio":
        g = np.array([x, 0.75 * x, 0.5 * x, 0.25 * x, 1.0, 0.5, 0.0])
    elif f in COUNT_FEATURES:
        g = x + np.arange(bundle.max_extra_purchases + 1, dtype=np.float64)
    else:
        g = x + aov * np.arange(bundle.max_extra_purchases + 1, dtype=np.float64)
    g = np.clip(g, lo, hi)
    g = g[np.argsort(np.abs(g - x), kind="stable")]
    return g[np.concatenate(([True], np.abs(np.diff(g)) > 1e-12))]


def search_counterfactual(bundle: ChurnModelBundle, row: pd.Series, threshold: float | None = None,
                          margin: float = 0.01, n_random: int = 2000, shrink_points: int = 64,
                          seed: int = 0) -> Counterfactual:
    """Greedy (random-search fallback) + shrink counterfactual for any model; used for the trees."""
    thr = bundle.threshold if threshold is None else threshold
    target_p = _sigmoid(_logit(thr) - margin)
    cid = str(row.name)
    base = pd.DataFrame([row[bundle.features].astype(np.float64)], index=[cid])
    base_arr = base.to_numpy()
    p0 = float(bundle.predict_proba(base)[0])
    bounds = plausible_bounds(bundle, row)
    if p0 < thr:
        return _finish(bundle, cid, row, {}, "none_needed", thr, p0, bounds, ["already below the threshold"])
    # gap_ratio is tied to recency here (recomputed, not searched): the trees need no linearity
    coupled = "gap_ratio" in bundle.features and "recency_days" in bundle.features and "ipt_mean_days" in row.index
    A = [f for f in actionable_in(bundle) if not (coupled and f == "gap_ratio")]
    cols = [bundle.features.index(f) for f in A]
    aov = float(row["avg_order_value"]) if "avg_order_value" in row.index else 0.0
    if aov <= 0:
        aov = max(float(row.get("monetary", 0.0)) / max(float(row.get("frequency", 1.0)), 1.0), 1.0)
    grids = {f: _step_grid(bundle, row, f, bounds[f], aov) for f in A}
    z0 = bundle.transform_z(base_arr)[0]

    j_rec = bundle.features.index("recency_days") if coupled else -1
    j_gap = bundle.features.index("gap_ratio") if coupled else -1
    # gap_ratio = recency / usual gap; scale the customer's own ratio so an untouched recency keeps it exactly
    rec0 = float(row["recency_days"]) if coupled else 0.0
    per_day = float(row["gap_ratio"]) / rec0 if coupled and rec0 > 0 else 0.0

    def couple(points: np.ndarray) -> np.ndarray:
        if coupled:
            points[:, j_gap] = np.where(points[:, j_rec] == rec0, float(row["gap_ratio"]), points[:, j_rec] * per_day)
        return points

    def result(point: np.ndarray) -> dict[str, float]:
        out = {f: float(point[j]) for f, j in zip(A, cols, strict=True)}
        if coupled:
            out["gap_ratio"] = float(row["gap_ratio"]) if point[j_rec] == rec0 else float(point[j_rec]) * per_day
        return out

    def score(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        points = couple(points)
        frame = pd.DataFrame(points, columns=bundle.features)
        dist = np.sqrt(((bundle.transform_z(points) - z0) ** 2).sum(axis=1))
        return bundle.predict_proba(frame), dist

    notes: list[str] = []
    pos = dict.fromkeys(A, 0)
    cur = base_arr[0].copy()
    p_cur, d_cur = p0, 0.0
    found = False
    for _ in range(sum(len(g) for g in grids.values())):
        moves, cands = [], []
        for f, j in zip(A, cols, strict=True):
            if pos[f] + 1 < len(grids[f]):
                c = cur.copy()
                c[j] = grids[f][pos[f] + 1]
                moves.append(f)
                cands.append(c)
        if not cands:
            break
        p, d = score(np.array(cands))
        gain = (p_cur - p) / np.maximum(d - d_cur, 1e-9)
        k = int(np.argmax(gain))
        pos[moves[k]] += 1
        cur, p_cur, d_cur = cands[k], float(p[k]), float(d[k])
        if p_cur < target_p:
            found = True
            break
    if found:
        notes.append("greedy search over plausible single-coordinate moves")
    else:
        rng = np.random.default_rng(seed)
        pts = np.repeat(base_arr, n_random, axis=0)
        for f, j in zip(A, cols, strict=True):
            x = float(row[f])
            far = bounds[f][0] if f in DOWN_FEATURES else bounds[f][1]
            vals = x + (far - x) * rng.uniform(0, 1, n_random) ** 2  # biased towards small changes
            vals = np.where(rng.uniform(size=n_random) < 0.3, float(row[f]), vals)  # leave some coordinates alone
            pts[:, j] = np.round(vals) if f in INTEGER_FEATURES else vals
        p, d = score(pts)
        ok = p < target_p
        notes.append(f"greedy search stalled; random search over {n_random} plausible points")
        if not ok.any():
            corner = base_arr[0].copy()
            for f, j in zip(A, cols, strict=True):
                corner[j] = bounds[f][0] if f in DOWN_FEATURES else bounds[f][1]
            pc, _ = score(corner[None, :])
            best = corner if pc[0] <= p.min() else pts[int(np.argmin(p))]
            return _finish(bundle, cid, row, result(best), "search",
                           thr, p0, bounds, notes)
        cur = pts[int(np.flatnonzero(ok)[np.argmin(d[ok])])].copy()
    for f, j in zip(A, cols, strict=True):  # shrink back towards the customer, one batch per coordinate
        x = float(row[f])
        if abs(cur[j] - x) < 1e-12:
            continue
        if f in INTEGER_FEATURES:
            vals = np.arange(x, cur[j] + 0.5 * np.sign(cur[j] - x), np.sign(cur[j] - x))
        else:
            vals = np.linspace(x, cur[j], shrink_points + 1)
        pts = np.repeat(cur[None, :], len(vals), axis=0)
        pts[:, j] = vals
        p, _ = score(pts)
        ok = np.flatnonzero(p < target_p)
        if ok.size:
            cur[j] = vals[ok[0]]
    notes.append("shrunk coordinate-wise towards the customer")
    notes.append("gap_ratio recomputed from the new recency (recency / usual gap), not moved on its own")
    return _finish(bundle, cid, row, result(cur), "search",
                   thr, p0, bounds, notes)


def counterfactuals(bundle: ChurnModelBundle, X: pd.DataFrame, threshold: float | None = None, margin: float = 0.01,
                    only_above: bool = True, round_integers: bool = True) -> list[Counterfactual]:
    """Counterfactual for every customer of ``X`` (above the threshold only, by default)."""
    thr = bundle.threshold if threshold is None else threshold
    rows = X
    if only_above:
        rows = X.loc[bundle.predict_proba(X) >= thr]
    out = []
    for cid, row in rows.iterrows():
        row = row.copy()
        row.name = cid
        if bundle.kind == "logistic":
            out.append(logistic_counterfactual(bundle, row, thr, margin, round_integers))
        else:
            out.append(search_counterfactual(bundle, row, thr, margin))
    return out


def purchase_scenarios(bundle: ChurnModelBundle, X: pd.DataFrame, max_purchases: int | None = None) -> pd.DataFrame:
    """Consistent "k purchases now" scenarios (all derived features recomputed), re-scored.

    One row per (customer, k) for k = 0 … ``max_purchases`` with the new probability, plus a
    marketer ``message`` for k ≥ 1 ("1 more purchase now lowers churn risk from 72% to 38%").
    """
    n_max = bundle.max_extra_purchases if max_purchases is None else max_purchases
    p0 = bundle.predict_proba(X)
    frames = []
    for k in range(n_max + 1):
        moved = apply_purchases(X, k) if k else X
        p = bundle.predict_proba(moved)
        frames.append(pd.DataFrame({"customer_id": X.index.astype(str), "purchases": k, "original_proba": p0,
                                    "proba": p, "below_threshold": p < bundle.threshold}))
    out = pd.concat(frames, ignore_index=True).sort_values(["customer_id", "purchases"], kind="stable")
    word = {1: "One more purchase", 2: "Two more purchases", 3: "Three more purchases"}
    out["message"] = [
        "" if k == 0 else f"{word.get(k, f'{k} more purchases')} now would move churn risk from {a:.0%} to {b:.0%}."
        for k, a, b in zip(out["purchases"], out["original_proba"], out["proba"], strict=True)
    ]
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# counterfactuals as purchases: "k more orders worth about X in the next N days"
# ---------------------------------------------------------------------------------------------
#
# What a campaign can actually cause is purchases, so the suggestions shown to marketers are purchase
# scenarios. Every feature moves through the one feature definition: the hypothetical orders are added
# to the customer's transactions and ``build_features`` recomputes everything at the new point in time
# (``actions_from_transactions``). A caller that only has the features (the API's feature payload) gets
# "k orders now" through ``apply_purchases``, the closed form of the same definition for orders placed just
# before the cut-off (``actions_from_features``). Each action is re-scored; the headline is one of the
# actions, so the page cannot contradict itself.

DEFAULT_ACTION_DAYS = 30


@dataclass
class PurchaseAction:
    orders: int
    order_value: float  # per order
    days: int  # 0 = now (at the cut-off); else spread over the next ``days`` days
    risk_before: float
    risk_after: float
    below_threshold: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class PurchasePlan:
    customer_id: str
    threshold: float
    risk: float
    days: int
    order_value: float
    risk_if_nothing: float | None  # risk after ``days`` days without an order (None for "now")
    actions: list[PurchaseAction]
    headline: str
    reaches_threshold: bool

    @property
    def best(self) -> PurchaseAction | None:
        """The headline action: the fewest orders that cross the threshold, else the lowest risk reached."""
        below = [a for a in self.actions if a.below_threshold]
        if below:
            return below[0]
        return min(self.actions, key=lambda a: a.risk_after) if self.actions else None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "actions"}
        out["actions"] = [a.to_dict() for a in self.actions]
        return out


def typical_order_value(row: pd.Series) -> float:
    """The customer's usual order (gross per purchase order), at least 1 currency unit."""
    aov = float(row.get("avg_order_value", 0.0) or 0.0)
    if aov <= 0:
        aov = float(row.get("monetary", 0.0)) / max(float(row.get("frequency", 1.0)), 1.0)
    return max(aov, 1.0)


def action_message(orders: int, order_value: float, days: int, before: float, after: float) -> str:
    what = "1 more order" if orders == 1 else f"{orders} more orders"
    worth = f"worth about {order_value:,.0f}" if orders == 1 else \
        f"worth about {order_value:,.0f} each ({orders * order_value:,.0f} in total)"
    when = "now" if days == 0 else f"in the next {days} days"
    return f"{what} {worth} {when} would bring churn risk from {before:.0%} to {after:.0%}."


def hypothetical_purchases(customer_id: Any, orders: int, order_value: float, start: pd.Timestamp,
                           days: int) -> pd.DataFrame:
    """``orders`` purchase invoices of ``order_value`` each, evenly over the ``days`` days after ``start`` (the last
    half a day before ``start + days``), or all at ``start`` minus a microsecond when ``days`` is 0."""
    start = pd.Timestamp(start)
    if days == 0:
        times = [start - pd.Timedelta(microseconds=1)] * orders
    else:
        times = [start + pd.Timedelta(days=days * (i + 1) / orders) - pd.Timedelta(hours=12) for i in range(orders)]
    return pd.DataFrame({
        "customer_id": [customer_id] * orders,
        "invoice": [f"hypothetical-{customer_id}-{i + 1}" for i in range(orders)],
        "invoiced_at": pd.to_datetime(times, utc=True),
        "amount": [float(order_value)] * orders,
        "quantity": [1] * orders,
        "is_return": [False] * orders,
        "category": [""] * orders,
    })


def _plan(bundle: ChurnModelBundle, cid: str, p0: float, days: int, value: float, risks: list[float],
          p_nothing: float | None) -> PurchasePlan:
    thr = bundle.threshold
    actions: list[PurchaseAction] = []
    shown: set[str] = set()
    for k, p in enumerate(risks, start=1):
        if f"{p:.0%}" in shown:
            continue  # more orders for no visible change: not worth a line
        shown.add(f"{p:.0%}")
        actions.append(PurchaseAction(orders=k, order_value=float(value), days=days, risk_before=float(p0),
                                      risk_after=float(p), below_threshold=bool(p < thr),
                                      message=action_message(k, value, days, p0, p)))
    plan = PurchasePlan(customer_id=cid, threshold=thr, risk=float(p0), days=days, order_value=float(value),
                        risk_if_nothing=p_nothing, actions=actions, headline="",
                        reaches_threshold=any(a.below_threshold for a in actions))
    best = plan.best
    if p0 < thr:
        plan.headline = f"Churn risk is {p0:.0%}, already below the {thr:.0%} line: no action needed."
    elif best is None:
        plan.headline = "No purchase scenario could be computed."
    elif best.below_threshold:
        plan.headline = best.message[:-1] + f", below the {thr:.0%} line."
    else:
        plan.headline = "Even " + best.message[:-1] + f": still above the {thr:.0%} line."
    return plan


def actions_from_transactions(bundle: ChurnModelBundle, transactions: pd.DataFrame, cutoff: Any, customer_id: Any,
                              customers: pd.DataFrame | None = None, days: int = DEFAULT_ACTION_DAYS,
                              max_orders: int | None = None, p_alive: float | None = None) -> PurchasePlan:
    """Purchase actions for one customer from their transactions (strictly before ``cutoff``): for k = 1…K the
    k orders are added over the next ``days`` days and every feature is rebuilt by ``build_features`` at
    ``cutoff + days``, then re-scored. ``risk_if_nothing`` is the same without any order."""
    from rfm_portal.customers.features import build_features

    cut = pd.Timestamp(cutoff)
    cut = cut.tz_localize("UTC") if cut.tzinfo is None else cut.tz_convert("UTC")
    n_max = bundle.max_extra_purchases if max_orders is None else max_orders
    tx = transactions[transactions["customer_id"] == customer_id]
    tx = tx[pd.to_datetime(tx["invoiced_at"], utc=True) < cut]
    cust = None if customers is None else customers[customers["customer_id"] == customer_id]
    base = build_features(tx, cut, cust)
    if customer_id not in base.index:
        raise ValueError(f"customer {customer_id!r} has no purchase before {cut.date()}")
    row = base.loc[customer_id]
    value = typical_order_value(row)
    # one build_features pass for every scenario: scenario k is customer id k (0 = no order)
    frames, cust_frames = [], []
    for k in range(n_max + 1):
        parts = [tx.assign(customer_id=k)]
        if k:
            parts.append(hypothetical_purchases(k, k, value, cut, days))
        frames.append(pd.concat(parts, ignore_index=True))
        if cust is not None:
            cust_frames.append(cust.assign(customer_id=k))
    all_tx = pd.concat(frames, ignore_index=True)
    all_tx["invoice"] = all_tx["invoice"].astype(str)
    all_tx["category"] = all_tx["category"].astype(str) if "category" in all_tx else ""
    moved = build_features(all_tx, cut + pd.Timedelta(days=days),
                           pd.concat(cust_frames, ignore_index=True) if cust_frames else None)
    scored = [base, moved]
    if "p_alive" in bundle.features:  # the CLTV model's view is an input here, not something orders recompute
        for frame in scored:
            frame["p_alive"] = float(p_alive if p_alive is not None else row.get("p_alive", 0.5))
    p0 = float(bundle.predict_proba(base.loc[[customer_id]])[0])
    p = bundle.predict_proba(moved.loc[list(range(n_max + 1))])
    return _plan(bundle, str(customer_id), p0, days, value, [float(x) for x in p[1:]],
                 float(p[0]) if days else None)


def typical_order_values(X: pd.DataFrame) -> np.ndarray:
    """:func:`typical_order_value` of every row at once."""
    n = len(X)
    zeros = np.zeros(n)
    aov = X["avg_order_value"].to_numpy(np.float64) if "avg_order_value" in X else zeros
    monetary = X["monetary"].to_numpy(np.float64) if "monetary" in X else zeros
    frequency = X["frequency"].to_numpy(np.float64) if "frequency" in X else np.ones(n)
    aov = np.where(aov <= 0, monetary / np.maximum(frequency, 1.0), aov)
    return np.maximum(aov, 1.0)


def actions_from_features(bundle: ChurnModelBundle, X: pd.DataFrame,
                          max_orders: int | None = None) -> dict[str, PurchasePlan]:
    """"k more orders now" for every row of a feature frame (no transactions at hand, e.g. the API's payload):
    ``apply_purchases`` gives exactly the features ``build_features`` would return with k orders of the usual
    value placed just before the cut-off. Every candidate (each row × k = 1…K) is one row of a single frame,
    re-scored by one ``predict_proba`` call."""
    n_max = bundle.max_extra_purchases if max_orders is None else max_orders
    n = len(X)
    if not n:
        return {}
    values = typical_order_values(X)
    p0 = bundle.predict_proba(X)
    risks = np.empty((n, 0))
    if n_max > 0:
        candidates = apply_purchases(X.iloc[np.tile(np.arange(n), n_max)], np.repeat(np.arange(1, n_max + 1), n),
                                     np.tile(values, n_max))
        risks = bundle.predict_proba(candidates).reshape(n_max, n).T
    return {str(cid): _plan(bundle, str(cid), p, 0, v, r, None)
            for cid, p, v, r in zip(X.index, p0.tolist(), values.tolist(), risks.tolist(), strict=True)}
