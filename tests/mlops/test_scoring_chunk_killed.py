"""kill -9 of a process in the middle of a scoring chunk: its half-written rows vanish and the chunk is done once.

A separate process claims a chunk (row lock, ``SKIP LOCKED``), writes a score row inside the chunk's transaction
and hangs; it is killed with SIGKILL. PostgreSQL rolls its transaction back when the connection drops, so the
chunk is pending again with none of its rows; the next process to claim it writes every row exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from churn.models import ChurnScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ScoringChunk, ScoringRun
from rfm_portal.mlops.scoring import plan_run, process_chunk
from rfm_portal.mlops.services import clear_model_cache
from tests.mlops.scoring_fixtures import expected_probability, ready_version

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60  # seconds for the child to start (Django, on a busy 2-core machine) and reach the hang

CHILD = """
import django, sys
django.setup()
import tests.mlops.scoring_fixtures  # registers the test scorer
from rfm_portal.mlops.scoring import process_chunk
print(process_chunk(int(sys.argv[1])), flush=True)
"""


@pytest.fixture(autouse=True)
def _artifacts_shared_with_the_child(settings, tmp_path):
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    clear_model_cache()
    yield
    clear_model_cache()


def _child(chunk_id: int, tmp_path: Path) -> subprocess.Popen:
    from django.conf import settings

    db = connection.settings_dict
    env = dict(os.environ, DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               ARTIFACT_ROOT=str(settings.ARTIFACT_ROOT), PYTHONPATH=str(ROOT),
               DJANGO_SETTINGS_MODULE="rfm_portal.settings")
    return subprocess.Popen([sys.executable, "-c", CHILD, str(chunk_id)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=open(tmp_path / "child.log", "wb"), text=True)


def test_a_chunk_whose_process_is_killed_half_way_is_rolled_back_and_scored_once_later(tmp_path):
    Customer.objects.bulk_create([Customer(external_id=f"c{i:02d}") for i in range(9)])
    hanging = Customer.objects.create(external_id="hang-then-killed")
    mv = ready_version()
    run = plan_run(mv, chunk_size=1000)
    (chunk,) = ScoringChunk.objects.filter(run=run)

    child = _child(chunk.pk, tmp_path)
    try:
        deadline = time.monotonic() + BOUND
        line = ""
        while time.monotonic() < deadline and child.poll() is None:
            line = child.stdout.readline().strip()
            if line == "hanging":
                break
        assert line == "hanging", (line, (tmp_path / "child.log").read_text(errors="replace")[-2000:])
        # the child holds the chunk: this process skips it rather than waiting or scoring it twice
        assert process_chunk(chunk.pk) == "skipped"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)

    # the killed transaction is rolled back: no half-written row, the chunk pending and claimable again
    deadline = time.monotonic() + BOUND
    chunk.refresh_from_db()
    assert chunk.state == ScoringChunk.State.PENDING
    assert not ChurnScore.objects.filter(model_version=mv).exists()

    # the next claim scores it (the hanging customer renamed so the scorer finishes) and writes each row once
    Customer.objects.filter(pk=hanging.pk).update(external_id="no-longer-hanging")
    state = "skipped"
    while state == "skipped" and time.monotonic() < deadline:  # until PostgreSQL has noticed the dead backend
        state = process_chunk(chunk.pk)
        if state == "skipped":
            time.sleep(0.1)
    assert state == ScoringChunk.State.DONE
    rows = list(ChurnScore.objects.filter(model_version=mv).values_list("customer_id", "probability"))
    assert sorted(pk for pk, _ in rows) == sorted(Customer.objects.values_list("pk", flat=True))
    assert dict(rows) == {c.pk: expected_probability(c.pk, 0.618) for c in Customer.objects.all()}
    run.refresh_from_db()
    assert run.state == ScoringRun.State.RUNNING  # the run itself is the caller's to finish
