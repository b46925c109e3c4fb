"""Batch scoring in chunks (rfm_portal.mlops.scoring), in this process: the embedded path and the rules.

The same chunks, the same rows, whatever the chunk size; a failed chunk fails the run and stops it;
a chunk run again replaces its rows instead of adding to them. Workers sharing the chunks are in
test_chunked_scoring_workers.py.
"""

from __future__ import annotations

import pytest

from churn.models import ChurnScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ScoringChunk, ScoringRun
from rfm_portal.mlops.scoring import (
    ScoringFailed,
    chunk_bounds,
    chunk_summaries,
    process_chunk,
    rows_written,
    score_all_customers,
    worker_name,
)
from rfm_portal.mlops.services import clear_model_cache
from tests.mlops.scoring_fixtures import expected_probability, ready_version

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _artifacts_in_tmp(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    clear_model_cache()
    yield
    clear_model_cache()


def make_customers(n: int, prefix: str = "c") -> list[Customer]:
    return Customer.objects.bulk_create([Customer(external_id=f"{prefix}{i:04d}") for i in range(n)])


def stored(mv) -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in ChurnScore.objects.filter(model_version=mv).values_list(
            "customer_id", "probability", "risk_band", "top_contributions", "features", "scored_at")
    }


def test_chunks_tile_the_customers_without_gap_or_overlap():
    customers = make_customers(53)
    Customer.objects.filter(pk__in=[c.pk for c in customers[10:20]]).delete()  # holes in the pks
    bounds = chunk_bounds(10)
    assert [b[2] for b in bounds] == [10, 10, 10, 10, 3]
    pks = sorted(Customer.objects.values_list("pk", flat=True))
    assert bounds[0][0] == pks[0] and bounds[-1][1] == pks[-1]
    assert all(bounds[i][1] + 1 == bounds[i + 1][0] for i in range(len(bounds) - 1))
    covered = [pk for first, last, _n in bounds for pk in pks if first <= pk <= last]
    assert covered == pks


def test_aligned_chunks_start_on_multiples_of_the_alignment():
    make_customers(40)
    for first, _last, _n in chunk_bounds(7, pk_align=5)[1:]:
        assert first % 5 == 0
    assert sum(b[2] for b in chunk_bounds(7, pk_align=5)) == 40


def test_chunked_scoring_writes_the_rows_of_one_unchunked_run():
    make_customers(95)
    mv = ready_version()
    whole = score_all_customers(mv, chunk_size=1000)
    assert whole.chunks_total == 1
    one_run = stored(mv)
    ChurnScore.objects.filter(model_version=mv).delete()

    run = score_all_customers(mv, {"scored_at": whole.params["scored_at"]}, chunk_size=9)
    assert run.state == ScoringRun.State.SUCCEEDED and run.chunks_total == 11
    assert stored(mv) == one_run
    assert rows_written(run) == 95 and sum(s["customers"] for s in chunk_summaries(run)) == 95
    for pk, (probability, *_rest) in one_run.items():
        assert probability == expected_probability(pk, 0.618)
    # inside a transaction (as here) no other process could see the chunks: all ran in this one
    assert set(ScoringChunk.objects.filter(run=run).values_list("worker", flat=True)) == {worker_name()}


def test_a_failing_chunk_fails_the_run_and_names_the_customers():
    make_customers(30)
    make_customers(1, prefix="fail")
    mv = ready_version()
    with pytest.raises(ScoringFailed, match=r"chunk 4 of 4 .* ValueError: a customer this model cannot score"):
        score_all_customers(mv, chunk_size=10)
    run = ScoringRun.objects.get(model_version=mv)
    assert run.state == ScoringRun.State.FAILED and "cannot score" in run.error
    failed = ScoringChunk.objects.get(run=run, state=ScoringChunk.State.FAILED)
    # the failed chunk wrote nothing: its transaction's savepoint was rolled back
    assert not ChurnScore.objects.filter(model_version=mv, customer_id__gte=failed.first_customer_id).exists()


def test_the_process_that_started_the_run_claims_chunks_from_the_last():
    make_customers(30)
    mv = ready_version()
    run = score_all_customers(mv, chunk_size=10)
    order = list(ScoringChunk.objects.filter(run=run).order_by("finished_at").values_list("number", flat=True))
    assert order == [2, 1, 0]


def test_a_chunk_scored_again_replaces_its_rows_and_a_done_chunk_is_skipped():
    make_customers(25)
    mv = ready_version()
    run = score_all_customers(mv, chunk_size=10)
    before = stored(mv)
    chunk = ScoringChunk.objects.get(run=run, number=1)
    assert process_chunk(chunk.pk) == "skipped"  # a redelivered task of a done chunk
    ScoringChunk.objects.filter(pk=chunk.pk).update(state=ScoringChunk.State.PENDING)  # a retry of the chunk
    ScoringRun.objects.filter(pk=run.pk).update(state=ScoringRun.State.RUNNING)
    assert process_chunk(chunk.pk) == ScoringChunk.State.DONE
    assert stored(mv) == before and ChurnScore.objects.filter(model_version=mv).count() == 25

    again = score_all_customers(mv, {"scored_at": run.params["scored_at"]}, chunk_size=7)  # a second whole run
    assert again.state == ScoringRun.State.SUCCEEDED
    assert stored(mv) == before


def test_chunks_of_a_failed_run_are_not_scored():
    make_customers(20)
    mv = ready_version()
    run = score_all_customers(mv, chunk_size=10)
    ScoringRun.objects.filter(pk=run.pk).update(state=ScoringRun.State.FAILED)
    ScoringChunk.objects.filter(run=run).update(state=ScoringChunk.State.PENDING)
    ChurnScore.objects.filter(model_version=mv).delete()
    assert {process_chunk(pk) for pk in ScoringChunk.objects.filter(run=run).values_list("pk", flat=True)} == {
        "skipped"}
    assert not ChurnScore.objects.filter(model_version=mv).exists()
