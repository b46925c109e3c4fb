"""The named RFM segments: a documented rule map from (R, F, M) quintile scores to one segment.

Rule
----
The map is the common *R × FM* grid. Each customer has quintile scores ``R``, ``F`` and ``M``
in 1–5 (5 = best; for R, 5 = most recent). Frequency and monetary value are strongly
correlated, so they are folded into one axis:

    FM = ceil((F + M) / 2)          # the average, rounded half up: (1,2) -> 2, (4,5) -> 5

and the segment is read from a 5 × 5 grid of R (rows) by FM (columns)::

    R \\ FM   1               2                   3                   4           5
    5        New             Potential Loyalist  Potential Loyalist  Champions   Champions
    4        Promising       Potential Loyalist  Potential Loyalist  Loyal       Champions
    3        About to Sleep  About to Sleep      Need Attention      Loyal       Loyal
    2        Hibernating     Hibernating         At Risk             At Risk     Can't Lose Them
    1        Lost            Lost                Hibernating         At Risk     Can't Lose Them

The grid is declared below as a list of rectangles (:data:`SEGMENT_RULES`); at import time the
module checks that the rectangles tile the 25 cells exactly once, so all 125 (R, F, M)
combinations map to exactly one segment. :func:`segment_map_table` exports the full
125-row map as data for the UI, :func:`segment_grid` the 5 × 5 grid, and :data:`SEGMENTS` a
short description and a suggested action per segment for marketers.

This module is pure Python + numpy/pandas (no Django).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SCORE_LEVELS",
    "SEGMENTS",
    "SEGMENT_NAMES",
    "SEGMENT_RULES",
    "SegmentInfo",
    "SegmentRule",
    "assign_segments",
    "fm_score",
    "segment_for",
    "segment_grid",
    "segment_map_table",
]

SCORE_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """A named RFM segment as shown to marketers.

    ``rank`` orders segments from most to least valuable (0 = Champions); charts and tables use
    it so the order is the same everywhere.
    """

    name: str
    rank: int
    description: str
    action: str
    color: str


@dataclass(frozen=True, slots=True)
class SegmentRule:
    """One rectangle of the R × FM grid: ``r_min <= R <= r_max`` and ``fm_min <= FM <= fm_max``."""

    segment: str
    r_min: int
    r_max: int
    fm_min: int
    fm_max: int

    def cells(self) -> list[tuple[int, int]]:
        return [(r, fm) for r in range(self.r_min, self.r_max + 1) for fm in range(self.fm_min, self.fm_max + 1)]


SEGMENTS: tuple[SegmentInfo, ...] = (
    SegmentInfo(
        "Champions",
        0,
        "Bought very recently, buy often and spend the most.",
        "Reward them: early access, loyalty perks, referrals and reviews. No discounts needed.",
        "#1a9850",
    ),
    SegmentInfo(
        "Loyal",
        1,
        "Buy regularly and spend well; responsive to the brand.",
        "Upsell higher-value products, ask for reviews, enrol in the loyalty programme.",
        "#66bd63",
    ),
    SegmentInfo(
        "Potential Loyalist",
        2,
        "Recent customers with average frequency and spend who could become loyal.",
        "Offer membership or a loyalty programme; recommend related products.",
        "#a6d96a",
    ),
    SegmentInfo(
        "New",
        3,
        "Bought very recently for the first time or only rarely, small spend so far.",
        "Onboard them: welcome series, first-month support, an easy second purchase.",
        "#3288bd",
    ),
    SegmentInfo(
        "Promising",
        4,
        "Recent shoppers who have not bought much yet.",
        "Build the relationship: brand awareness, free trials, a time-limited second-order offer.",
        "#66c2a5",
    ),
    SegmentInfo(
        "Need Attention",
        5,
        "Middling recency, frequency and spend; may be drifting.",
        "Re-engage with limited-time offers and recommendations based on their history.",
        "#fee08b",
    ),
    SegmentInfo(
        "About to Sleep",
        6,
        "Below-average recency, low frequency and spend; will be lost without a nudge.",
        "Share popular products and reconnect with a relevant, modest discount.",
        "#fdae61",
    ),
    SegmentInfo(
        "At Risk",
        7,
        "Used to buy often and spend well, but not for a while.",
        "Send personalised win-back emails, renewals and helpful resources.",
        "#f46d43",
    ),
    SegmentInfo(
        "Can't Lose Them",
        8,
        "Made the biggest and most frequent purchases, but long ago.",
        "Win them back with new products and strong offers; talk to them, do not lose them to a competitor.",
        "#d73027",
    ),
    SegmentInfo(
        "Hibernating",
        9,
        "Last purchase long ago, few orders and low spend.",
        "Offer relevant products and special discounts; recreate brand value cheaply.",
        "#9e9ac8",
    ),
    SegmentInfo(
        "Lost",
        10,
        "Lowest recency, frequency and spend.",
        "Revive interest with a broad reach campaign only if cheap; otherwise exclude from paid campaigns.",
        "#969696",
    ),
)

SEGMENT_NAMES: tuple[str, ...] = tuple(s.name for s in SEGMENTS)
_SEGMENT_INDEX: dict[str, int] = {name: i for i, name in enumerate(SEGMENT_NAMES)}

SEGMENT_RULES: tuple[SegmentRule, ...] = (
    SegmentRule("Champions", 5, 5, 4, 5),
    SegmentRule("Champions", 4, 4, 5, 5),
    SegmentRule("Loyal", 4, 4, 4, 4),
    SegmentRule("Loyal", 3, 3, 4, 5),
    SegmentRule("Potential Loyalist", 4, 5, 2, 3),
    SegmentRule("New", 5, 5, 1, 1),
    SegmentRule("Promising", 4, 4, 1, 1),
    SegmentRule("Need Attention", 3, 3, 3, 3),
    SegmentRule("About to Sleep", 3, 3, 1, 2),
    SegmentRule("At Risk", 2, 2, 3, 4),
    SegmentRule("At Risk", 1, 1, 4, 4),
    SegmentRule("Can't Lose Them", 1, 2, 5, 5),
    SegmentRule("Hibernating", 2, 2, 1, 2),
    SegmentRule("Hibernating", 1, 1, 3, 3),
    SegmentRule("Lost", 1, 1, 1, 2),
)


def _build_grid(rules: tuple[SegmentRule, ...]) -> np.ndarray:
    """Rasterise the rules into a 5 × 5 array of segment indices (row R-1, column FM-1).

    Raises ``ValueError`` if a rule names an unknown segment, leaves the 1–5 range, overlaps
    another rule or leaves a cell uncovered — so a bad edit to the map fails at import time.
    """
    grid = np.full((5, 5), -1, dtype=np.int8)
    for rule in rules:
        if rule.segment not in _SEGMENT_INDEX:
            raise ValueError(f"unknown segment in rule map: {rule.segment!r}")
        for r, fm in rule.cells():
            if not (1 <= r <= 5 and 1 <= fm <= 5):
                raise ValueError(f"rule {rule} leaves the 1–5 score range")
            if grid[r - 1, fm - 1] != -1:
                raise ValueError(f"cell R={r}, FM={fm} is covered twice in the rule map")
            grid[r - 1, fm - 1] = _SEGMENT_INDEX[rule.segment]
    missing = np.argwhere(grid == -1)
    if missing.size:
        r, fm = missing[0] + 1
        raise ValueError(f"cell R={r}, FM={fm} is not covered by the rule map")
    unused = set(SEGMENT_NAMES) - {rule.segment for rule in rules}
    if unused:
        raise ValueError(f"segments without any cell in the rule map: {sorted(unused)}")
    return grid


_GRID: np.ndarray = _build_grid(SEGMENT_RULES)


def fm_score(f: np.ndarray | pd.Series | int, m: np.ndarray | pd.Series | int) -> np.ndarray:
    """The FM axis of the grid: ``ceil((F + M) / 2)`` computed in integers as ``(F + M + 1) // 2``."""
    return (np.asarray(f, dtype=np.int64) + np.asarray(m, dtype=np.int64) + 1) // 2


def segment_for(r: int, f: int, m: int) -> str:
    """The segment of one (R, F, M) score triple (each 1–5)."""
    for name, value in (("R", r), ("F", f), ("M", m)):
        if int(value) not in SCORE_LEVELS:
            raise ValueError(f"{name} score must be an integer 1–5, got {value!r}")
    return SEGMENT_NAMES[int(_GRID[int(r) - 1, int(fm_score(f, m)) - 1])]


def assign_segments(r: np.ndarray | pd.Series, f: np.ndarray | pd.Series, m: np.ndarray | pd.Series) -> pd.Categorical:
    """Vectorised :func:`segment_for`: one segment per row, as a Categorical in :data:`SEGMENT_NAMES` order."""
    r_arr = np.asarray(r, dtype=np.int64)
    f_arr = np.asarray(f, dtype=np.int64)
    m_arr = np.asarray(m, dtype=np.int64)
    if not (r_arr.shape == f_arr.shape == m_arr.shape):
        raise ValueError("R, F and M score arrays must have the same length")
    for name, arr in (("R", r_arr), ("F", f_arr), ("M", m_arr)):
        if arr.size and (arr.min() < 1 or arr.max() > 5):
            raise ValueError(f"{name} scores must be integers 1–5")
    codes = _GRID[r_arr - 1, fm_score(f_arr, m_arr) - 1]
    return pd.Categorical.from_codes(codes, categories=list(SEGMENT_NAMES))


def segment_grid() -> pd.DataFrame:
    """The 5 × 5 R × FM grid of segment names; index R from 5 (top) to 1, columns FM 1–5."""
    frame = pd.DataFrame(
        [[SEGMENT_NAMES[int(_GRID[r - 1, fm - 1])] for fm in SCORE_LEVELS] for r in reversed(SCORE_LEVELS)],
        index=pd.Index(list(reversed(SCORE_LEVELS)), name="r_score"),
        columns=pd.Index(list(SCORE_LEVELS), name="fm_score"),
    )
    return frame


def segment_map_table() -> pd.DataFrame:
    """All 125 (R, F, M) combinations with their FM value and segment, for display and audit.

    Columns: ``r_score, f_score, m_score, fm_score, segment, description, action``.
    """
    r, f, m = np.meshgrid(SCORE_LEVELS, SCORE_LEVELS, SCORE_LEVELS, indexing="ij")
    r, f, m = r.ravel(), f.ravel(), m.ravel()
    segment = assign_segments(r, f, m)
    info = {s.name: s for s in SEGMENTS}
    names = np.asarray(segment)
    return pd.DataFrame(
        {
            "r_score": r,
            "f_score": f,
            "m_score": m,
            "fm_score": fm_score(f, m),
            "segment": names,
            "description": [info[n].description for n in names],
            "action": [info[n].action for n in names],
        }
    )
