"""The named-segment rule map: complete, exclusive, documented and sensible at the corners."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from segmentation import segment_map
from segmentation.segment_map import (
    SEGMENT_NAMES,
    SEGMENT_RULES,
    SEGMENTS,
    SegmentRule,
    assign_segments,
    fm_score,
    segment_for,
    segment_grid,
    segment_map_table,
)


def test_every_rfm_combination_maps_to_exactly_one_segment():
    table = segment_map_table()
    assert len(table) == 125
    assert not table.duplicated(["r_score", "f_score", "m_score"]).any()
    expected = set(itertools.product(range(1, 6), repeat=3))
    assert set(zip(table["r_score"], table["f_score"], table["m_score"], strict=True)) == expected
    assert set(table["segment"]) == set(SEGMENT_NAMES)  # every segment is reachable
    # Counting rule hits independently of the grid: each combination lies in exactly one rectangle.
    for r, f, m in expected:
        fm = int(fm_score(f, m))
        hits = [
            rule.segment for rule in SEGMENT_RULES if rule.r_min <= r <= rule.r_max and rule.fm_min <= fm <= rule.fm_max
        ]
        assert len(hits) == 1, (r, f, m, hits)
        assert hits[0] == segment_for(r, f, m)


def test_table_carries_description_and_action_for_marketers():
    table = segment_map_table()
    assert table["description"].str.len().min() > 10
    assert table["action"].str.len().min() > 10
    assert len({s.name for s in SEGMENTS}) == len(SEGMENTS) == 11
    assert [s.rank for s in SEGMENTS] == list(range(11))
    assert all(s.color.startswith("#") and len(s.color) == 7 for s in SEGMENTS)


def test_the_eleven_standard_segment_names():
    assert set(SEGMENT_NAMES) == {
        "Champions",
        "Loyal",
        "Potential Loyalist",
        "New",
        "Promising",
        "Need Attention",
        "About to Sleep",
        "At Risk",
        "Can't Lose Them",
        "Hibernating",
        "Lost",
    }


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, "Champions"),
        (5, 1, 1, "New"),
        (4, 1, 1, "Promising"),
        (4, 4, 4, "Loyal"),
        (5, 3, 2, "Potential Loyalist"),
        (3, 3, 3, "Need Attention"),
        (3, 1, 2, "About to Sleep"),
        (2, 4, 3, "At Risk"),
        (1, 5, 5, "Can't Lose Them"),
        (2, 1, 1, "Hibernating"),
        (1, 1, 1, "Lost"),
    ],
)
def test_corners_of_the_grid(r, f, m, segment):
    assert segment_for(r, f, m) == segment


def test_fm_is_the_average_rounded_half_up():
    f, m = np.meshgrid(range(1, 6), range(1, 6))
    expected = np.floor((f + m) / 2 + 0.5).astype(int)
    assert (fm_score(f, m) == expected).all()
    assert fm_score(1, 2) == 2 and fm_score(4, 5) == 5 and fm_score(3, 3) == 3


def test_more_recent_never_means_a_less_valuable_segment_at_the_same_fm():
    """Sanity of the map: for fixed FM, a better R never gives a worse-ranked segment."""
    rank = {s.name: s.rank for s in SEGMENTS}
    grid = segment_grid()
    for fm in range(1, 6):
        ranks = [rank[grid.loc[r, fm]] for r in range(1, 6)]
        assert ranks == sorted(ranks, reverse=True), (fm, ranks)


def test_segment_grid_layout():
    grid = segment_grid()
    assert grid.shape == (5, 5)
    assert list(grid.index) == [5, 4, 3, 2, 1]
    assert list(grid.columns) == [1, 2, 3, 4, 5]
    assert grid.loc[5, 5] == "Champions" and grid.loc[1, 1] == "Lost"


def test_assign_segments_is_vectorised_and_categorical():
    rng = np.random.default_rng(0)
    r, f, m = rng.integers(1, 6, size=(3, 1000))
    cats = assign_segments(r, f, m)
    assert isinstance(cats, pd.Categorical)
    assert list(cats.categories) == list(SEGMENT_NAMES)
    assert not pd.isna(cats).any()
    assert list(cats) == [segment_for(a, b, c) for a, b, c in zip(r, f, m, strict=True)]


@pytest.mark.parametrize("bad", [(0, 3, 3), (6, 3, 3), (3, 0, 3), (3, 3, 7)])
def test_out_of_range_scores_are_rejected(bad):
    with pytest.raises(ValueError, match="1–5"):
        segment_for(*bad)
    with pytest.raises(ValueError, match="1–5"):
        assign_segments(*[np.array([v]) for v in bad])


def test_rule_map_validation_catches_gaps_overlaps_and_unknown_names():
    rules = list(SEGMENT_RULES)
    with pytest.raises(ValueError, match="not covered"):
        segment_map._build_grid(tuple(rules[1:]))
    with pytest.raises(ValueError, match="covered twice"):
        segment_map._build_grid((*rules, SegmentRule("Lost", 1, 1, 1, 1)))
    with pytest.raises(ValueError, match="unknown segment"):
        segment_map._build_grid((SegmentRule("Whales", 5, 5, 5, 5), *rules))
    with pytest.raises(ValueError, match="score range"):
        segment_map._build_grid((SegmentRule("Lost", 0, 1, 1, 1),))
