"""Campaign planner math: per-customer option values, budget allocation, segment summary, naive rules,
holdout and power, measured results, and the safe message renderer. Arrays in, arrays/dicts out; no Django.

Money model (the same as the uplift app's expected profit, per channel):
    uplift_k  = uplift × effect_factor_k           (a channel's effect relative to the channel the uplift
    revenue_k = revenue_uplift × effect_factor_k    model was learned on, a stated assumption per channel)
    spend_k   = cost_per_contact_k + incentive × P(buy | contacted on k)   (the incentive is paid on redemption)
    profit_k  = margin × revenue_k − spend_k        (expected incremental profit of contacting on k)
The budget caps the expected spend.

Allocation is a multiple-choice knapsack (each customer: nothing or exactly one channel). We solve its LP
relaxation exactly — per customer the upper convex hull of (spend, profit) options gives "upgrades" with
decreasing profit per unit of spend; taking upgrades in order of that ratio across all customers is the LP
optimum (Sinha & Zoltners 1979) — and round it down to whole decisions (the last, fractional upgrade is
dropped, then left-over budget is filled greedily). Caveat, stated on the page: the integer plan can fall
short of the true optimum by at most the profit of one upgrade; we report the LP upper bound so the gap is
visible. With 10⁵–10⁶ customers and contact costs ≪ budget the gap is negligible, while an exact MILP
would be orders of magnitude slower.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

SLEEPING_DOG = "sleeping_dog"


class PlanError(ValueError):
    """Inputs the planner cannot work with: a clear message for the form."""


@dataclass(frozen=True)
class Channel:
    name: str
    cost: float  # per contact
    effect_factor: float = 1.0  # effect relative to the channel the uplift model was learned on


@dataclass(frozen=True)
class PlanInputs:
    channels: tuple[Channel, ...]
    budget: float
    margin: float = 0.4
    incentive_cost: float = 0.0
    holdout_share: float = 0.1
    segment_caps: dict[str, int] = field(default_factory=dict)
    seed: int = 0

    def validated(self) -> PlanInputs:
        if not self.channels:
            raise PlanError("Choose at least one channel.")
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise PlanError("Each channel may appear once.")
        for c in self.channels:
            if not (math.isfinite(c.cost) and c.cost > 0):
                raise PlanError(f"The cost per contact of {c.name} must be a positive number.")
            if not (math.isfinite(c.effect_factor) and 0 <= c.effect_factor <= 5):
                raise PlanError(f"The effect factor of {c.name} must be within [0, 5].")
        if not (math.isfinite(self.budget) and self.budget > 0):
            raise PlanError("The budget must be a positive number.")
        if not (0 <= self.margin <= 1):
            raise PlanError("The margin is a share of revenue within [0, 1].")
        if not (math.isfinite(self.incentive_cost) and self.incentive_cost >= 0):
            raise PlanError("The incentive cost must be ≥ 0.")
        if not (0 <= self.holdout_share < 0.9):
            raise PlanError("The holdout share must be within [0, 0.9).")
        if any((not isinstance(v, int)) or v < 0 for v in self.segment_caps.values()):
            raise PlanError("Segment caps must be whole numbers ≥ 0.")
        return self


def option_values(uplift: np.ndarray, baseline: np.ndarray, revenue_uplift: np.ndarray,
                  inputs: PlanInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profit, spend, uplift) per customer × channel, shape (n, K)."""
    u = np.asarray(uplift, np.float64)[:, None]
    b = np.asarray(baseline, np.float64)[:, None]
    r = np.asarray(revenue_uplift, np.float64)[:, None]
    factor = np.array([c.effect_factor for c in inputs.channels], np.float64)[None, :]
    cost = np.array([c.cost for c in inputs.channels], np.float64)[None, :]
    uk = u * factor
    spend = cost + inputs.incentive_cost * np.clip(b + uk, 0.0, 1.0)
    profit = inputs.margin * r * factor - spend
    return profit, spend, uk


# ---------------------------------------------------------------------------------------------
# allocation
# ---------------------------------------------------------------------------------------------


@dataclass
class Allocation:
    channel: np.ndarray  # (n,) int: chosen channel index, −1 = not contacted
    profit: float  # expected incremental profit of the plan
    spend: float  # expected spend of the plan (≤ budget)
    lp_bound: float  # LP-relaxation optimum: no plan within the budget can do better
    curve_spend: np.ndarray  # profit-vs-budget curve of the LP greedy (diminishing returns)
    curve_profit: np.ndarray

    @property
    def selected(self) -> np.ndarray:
        return self.channel >= 0


def _upgrades(profit: np.ndarray, spend: np.ndarray, eligible: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per customer the upper convex hull of its options from (0, 0), as successive upgrades.

    Returns flat arrays (customer, step, option, d_spend, d_profit) with, per customer, decreasing
    d_profit/d_spend. Gift-wrapping vectorised over customers: K (channels) iterations at most.
    """
    n, k = profit.shape
    usable = eligible[:, None] & (profit > 0) & np.isfinite(profit)
    cur_s = np.zeros(n)
    cur_p = np.zeros(n)
    active = usable.any(axis=1)
    out: list[tuple[np.ndarray, ...]] = []
    for step in range(k):
        if not active.any():
            break
        ds = spend - cur_s[:, None]
        dp = profit - cur_p[:, None]
        ok = usable & active[:, None] & (ds > 1e-12) & (dp > 0)
        ratio = np.where(ok, dp / np.where(ds > 1e-12, ds, 1.0), -np.inf)
        best = np.argmax(ratio, axis=1)
        has = ok[np.arange(n), best]
        rows = np.flatnonzero(has)
        if not len(rows):
            break
        opt = best[rows]
        out.append((rows, np.full(len(rows), step), opt, ds[rows, opt], dp[rows, opt]))
        cur_s[rows] = spend[rows, opt]
        cur_p[rows] = profit[rows, opt]
        active = np.zeros(n, bool)
        active[rows] = True
    if not out:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros(0), np.zeros(0)
    return tuple(np.concatenate([o[i] for o in out]) for i in range(5))


def allocate(profit: np.ndarray, spend: np.ndarray, eligible: np.ndarray, budget: float,
             segments: np.ndarray | None = None, caps: dict[str, int] | None = None,
             curve_points: int = 200) -> Allocation:
    """Choose at most one channel per eligible customer to maximise expected profit with Σ spend ≤ budget.

    ``eligible`` already excludes sleeping dogs, fatigued customers etc.; options with profit ≤ 0 are
    never taken. ``caps``: at most that many contacts from a segment (the customers whose first upgrade
    ranks best within the segment are kept, which is what a sequential greedy with caps would do).
    """
    profit = np.asarray(profit, np.float64)
    spend = np.asarray(spend, np.float64)
    n = profit.shape[0]
    cust, step, opt, ds, dp = _upgrades(profit, spend, np.asarray(eligible, bool))
    # Order: best profit per unit of spend first; per customer its steps stay in order (ratios decrease).
    order = np.lexsort((step, cust, -(dp / ds))) if len(cust) else np.zeros(0, np.int64)
    cust, step, opt, ds, dp = cust[order], step[order], opt[order], ds[order], dp[order]
    if caps and segments is not None and len(cust):
        segments = np.asarray(segments, dtype=object)
        first = step == 0
        keep_customer = np.ones(n, bool)
        seg_of_first = segments[cust[first]]
        for seg, cap in caps.items():
            in_seg = np.flatnonzero(seg_of_first == seg)  # already in global rank order
            keep_customer[cust[first][in_seg[cap:]]] = False
        mask = keep_customer[cust]
        cust, step, opt, ds, dp = cust[mask], step[mask], opt[mask], ds[mask], dp[mask]
    cum_s = np.cumsum(ds)
    cum_p = np.cumsum(dp)
    taken = int(np.searchsorted(cum_s, budget, side="right"))  # prefix with Σ spend ≤ budget
    channel = np.full(n, -1, np.int64)
    last_step = np.full(n, -1, np.int64)
    channel[cust[:taken]] = opt[:taken]  # later steps overwrite earlier ones of the same customer
    last_step[cust[:taken]] = step[:taken]
    used = float(cum_s[taken - 1]) if taken else 0.0
    gained = float(cum_p[taken - 1]) if taken else 0.0
    lp_bound = gained
    if taken < len(cust):
        lp_bound += float(dp[taken] * max(0.0, budget - used) / ds[taken])
        # Fill what is left with upgrades that still fit and whose predecessor was taken.
        rest = budget - used
        min_ds = float(ds[taken:].min())
        for i in range(taken, len(cust)):
            if rest < min_ds:
                break
            c = cust[i]
            if ds[i] <= rest and last_step[c] == step[i] - 1:
                channel[c] = opt[i]
                last_step[c] = step[i]
                rest -= ds[i]
                gained += dp[i]
        used = budget - rest
    # The curve: the LP-greedy path, subsampled.
    if len(cum_s):
        idx = np.unique(np.linspace(0, len(cum_s) - 1, min(curve_points, len(cum_s))).astype(np.int64))
        curve_s, curve_p = np.r_[0.0, cum_s[idx]], np.r_[0.0, cum_p[idx]]
    else:
        curve_s, curve_p = np.zeros(1), np.zeros(1)
    chosen = channel >= 0
    rows = np.flatnonzero(chosen)
    spend_total = float(spend[rows, channel[rows]].sum())
    profit_total = float(profit[rows, channel[rows]].sum())
    return Allocation(channel=channel, profit=profit_total, spend=spend_total, lp_bound=max(lp_bound, profit_total),
                      curve_spend=curve_s, curve_profit=curve_p)


def naive_selection(score: np.ndarray, spend: np.ndarray, budget: float) -> np.ndarray:
    """A naive rule: contact customers in descending ``score`` until the budget is spent (one channel)."""
    order = np.argsort(-np.asarray(score, np.float64), kind="stable")
    cum = np.cumsum(np.asarray(spend, np.float64)[order])
    k = int(np.searchsorted(cum, budget, side="right"))
    chosen = np.zeros(len(order), bool)
    chosen[order[:k]] = True
    return chosen


def naive_rules(profit: np.ndarray, spend: np.ndarray, channel: int, budget: float,
                rules: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Each rule's selection on ``channel`` at the same budget, and its expected profit/spend/contacts."""
    out = {}
    for name, score in rules.items():
        sel = naive_selection(score, spend[:, channel], budget)
        out[name] = {"profit": float(profit[sel, channel].sum()), "spend": float(spend[sel, channel].sum()),
                     "contacts": int(sel.sum())}
    return out


# ---------------------------------------------------------------------------------------------
# segment summary, holdout, power, results
# ---------------------------------------------------------------------------------------------


def segment_summary(labels: np.ndarray, uplift: np.ndarray, low: np.ndarray, high: np.ndarray,
                    profit_first: np.ndarray, uplift_first: np.ndarray, group: np.ndarray,
                    selected: np.ndarray, plan_profit: np.ndarray) -> list[dict[str, Any]]:
    """Per segment: size, mean effect with the mean of the per-customer 95 % bounds (a conservative
    interval for the segment average), expected incremental conversions and profit if all were contacted
    on the first channel, sleeping dogs, and what the plan takes. Ranked by profit per customer."""
    labels = np.asarray(labels, dtype=object)
    rows = []
    for seg in dict.fromkeys(labels.tolist()):
        m = labels == seg
        n = int(m.sum())
        rows.append({
            "segment": str(seg), "customers": n, "mean_uplift": float(uplift[m].mean()),
            "low": float(low[m].mean()), "high": float(high[m].mean()),
            "incremental_conversions": float(uplift_first[m].sum()), "profit_all": float(profit_first[m].sum()),
            "profit_per_customer": float(profit_first[m].mean()),
            "sleeping_dogs": int((group[m] == SLEEPING_DOG).sum()),
            "selected": int(selected[m].sum()), "plan_profit": float(plan_profit[m].sum()),
        })
    rows.sort(key=lambda r: -r["profit_per_customer"])
    for rank, r in enumerate(rows, start=1):
        r["rank"] = rank
    return rows


def draw_holdout(n: int, share: float, seed: int) -> np.ndarray:
    """Exactly round(share × n) of n selected customers, at random (seeded), as a boolean mask."""
    k = round(share * n)
    mask = np.zeros(n, bool)
    if k:
        mask[np.random.default_rng(seed).choice(n, size=k, replace=False)] = True
    return mask


def minimum_detectable_effect(n_contact: int, n_holdout: int, base_rate: float, alpha: float = 0.05,
                              power: float = 0.8) -> float | None:
    """Smallest difference in conversion rate (contacted − holdout) a two-sided z-test at ``alpha``
    detects with probability ``power``: (z₁₋α/₂ + z_power) · √(p(1−p)(1/n₁ + 1/n₂))."""
    if n_contact < 1 or n_holdout < 1:
        return None
    p = min(max(base_rate, 1e-6), 1 - 1e-6)
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    return float(z * math.sqrt(p * (1 - p) * (1 / n_contact + 1 / n_holdout)))


def measured_results(converted_c: np.ndarray, revenue_c: np.ndarray, converted_h: np.ndarray,
                     revenue_h: np.ndarray, spend_contact: float, incentive_cost: float, margin: float,
                     alpha: float = 0.05) -> dict[str, Any]:
    """Realised uplift (contacted − holdout conversion) with a Wald interval, and realised incremental
    profit = n_c · margin · Δ(mean revenue) − contact spend − incentives paid, with an interval from Δrevenue."""
    cc, ch = np.asarray(converted_c, float), np.asarray(converted_h, float)
    rc, rh = np.asarray(revenue_c, float), np.asarray(revenue_h, float)
    n_c, n_h = len(cc), len(ch)
    if n_c < 2 or n_h < 2:
        raise PlanError("Both the contacted group and the holdout need outcomes for at least 2 customers.")
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p_c, p_h = cc.mean(), ch.mean()
    d = p_c - p_h
    se = math.sqrt(p_c * (1 - p_c) / n_c + p_h * (1 - p_h) / n_h)
    d_rev = rc.mean() - rh.mean()
    se_rev = math.sqrt(rc.var(ddof=1) / n_c + rh.var(ddof=1) / n_h)
    incentives = incentive_cost * cc.sum()
    profit = n_c * margin * d_rev - spend_contact - incentives
    half = n_c * margin * z * se_rev
    return {"n_contact": n_c, "n_holdout": n_h, "rate_contact": float(p_c), "rate_holdout": float(p_h),
            "uplift": float(d), "uplift_low": float(d - z * se), "uplift_high": float(d + z * se),
            "revenue_per_customer_diff": float(d_rev), "incremental_profit": float(profit),
            "profit_low": float(profit - half), "profit_high": float(profit + half),
            "contact_spend": float(spend_contact), "incentives": float(incentives)}


def rank_campaigns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Campaigns by expected incremental profit, then ROI (profit ÷ spend)."""
    for r in rows:
        r["roi"] = (r["profit"] / r["spend"]) if r.get("spend") else None
    return sorted(rows, key=lambda r: (-(r.get("profit") or 0.0), -(r["roi"] or 0.0)))


# ---------------------------------------------------------------------------------------------
# messages
# ---------------------------------------------------------------------------------------------

PLACEHOLDERS: dict[str, str] = {
    "customer_id": "the customer's id",
    "segment": "RFM segment (e.g. Champions)",
    "cluster": "cluster name",
    "favourite_category": "the category they buy most",
    "days_since_last_order": "days since their last order",
    "country": "country",
    "offer": "the campaign's offer text",
    "recommended_products": "products bought by customers with similar baskets (lookalikes model)",
}
_TOKEN = re.compile(r"\{\{(.*?)\}\}", re.S)
_NAME = re.compile(r"^\s*([a-z_]+)\s*$")


class TemplateError(ValueError):
    """A message template that uses a placeholder we do not fill, or a malformed one."""


def template_fields(text: str) -> list[str]:
    """Placeholder names in ``text`` ({{ name }}); unknown or malformed ones raise TemplateError."""
    names, bad = [], []
    for m in _TOKEN.finditer(text):
        name = _NAME.match(m.group(1))
        if name is None or name.group(1) not in PLACEHOLDERS:
            bad.append("{{" + m.group(1) + "}}")
        else:
            names.append(name.group(1))
    if bad:
        raise TemplateError(f"Unknown placeholder(s): {', '.join(bad)}. Available: "
                            + ", ".join("{{ " + k + " }}" for k in PLACEHOLDERS) + ".")
    stray = _TOKEN.sub("", text)
    if "{{" in stray or "}}" in stray:
        raise TemplateError("A placeholder is not closed: write {{ name }}.")
    return names


def render_message(text: str, values: dict[str, Any]) -> str:
    """The message with every placeholder filled from ``values`` (only the whitelisted names), HTML-escaped
    — literal text and values alike — so the result is safe to show in a page or an HTML e-mail."""
    template_fields(text)
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        out.append(html.escape(text[pos:m.start()]))
        value = values.get(_NAME.match(m.group(1)).group(1))
        out.append(html.escape("" if value is None else str(value)))
        pos = m.end()
    out.append(html.escape(text[pos:]))
    return "".join(out)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formula injection: text starting with = + - @ tab CR gets a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
