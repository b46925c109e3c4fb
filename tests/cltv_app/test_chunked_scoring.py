"""CLTV scores written in chunks: exactly the rows of one unchunked scoring, simulated quantiles included."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from cltv import services
from cltv.models import CLTVScore
from cltv.pipeline import score_in_pk_blocks
from cltv.summary import summary_from_transactions
from rfm_portal.mlops.models import ScoringChunk
from rfm_portal.mlops.scoring import chunk_summaries, score_all_customers
from rfm_portal.mlops.services import load_version
from tests.cltv_app.conftest import END

FIELDS = ("customer_id", "first_purchase", "frequency", "recency", "T", "monetary", *services.SCORE_COLUMNS)


def stored(mv) -> list[tuple]:
    return list(CLTVScore.objects.filter(model_version=mv).order_by("customer_id").values_list(*FIELDS))


@pytest.mark.django_db
def test_chunked_scoring_writes_exactly_the_rows_of_unchunked_scoring(trained, settings):
    settings.CLTV_SIMULATION_BLOCK = 50
    mv = services.train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=40)
    assert mv.params["simulation_block"] == 50 and mv.scoring_runs.get().chunks_total == 1  # training: one chunk
    one_chunk = stored(mv)

    # unchunked, in memory: every customer's summary and scores at once
    bundle = load_version(mv)
    frame = services.transaction_days(before=END + timedelta(days=1))
    summary = summary_from_transactions(frame, END, unit="W").sort_index()
    columns = services.score_columns(summary, score_in_pk_blocks(bundle, summary, block=50).scores)
    assert [tuple(row) for row in zip(*(columns[f] for f in FIELDS), strict=True)] == one_chunk

    run = score_all_customers(mv, chunk_size=70)
    assert run.chunks_total > 10
    firsts = ScoringChunk.objects.filter(run=run).order_by("number").values_list("first_customer_id", flat=True)
    assert all(first % 50 == 0 for first in list(firsts)[1:])
    assert stored(mv) == one_chunk
    assert len(one_chunk) == mv.metrics["n_customers"]

    # the cohort band from the chunks' sums: the same as from the one chunk (up to the order of additions)
    chunked = services._cohort_metrics(chunk_summaries(run))
    assert [c["cohort"] for c in chunked["cohorts"]] == [c["cohort"] for c in mv.metrics["cohorts"]]
    for key in ("customers", "expected_clv", "p10", "p50", "p90"):
        np.testing.assert_allclose([c[key] for c in chunked["cohorts"]], [c[key] for c in mv.metrics["cohorts"]],
                                   rtol=1e-9)
    assert chunked["total_clv"] == pytest.approx(mv.metrics["total_clv"], rel=1e-12)
