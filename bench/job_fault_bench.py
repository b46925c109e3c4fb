"""Time from `kill -9` of a whole Celery worker (mid-training) to its Job marked failed (issue 9).

    .venv/bin/python bench/job_fault_bench.py              # production defaults
    JOB_STALE_AFTER_SECONDS=30 .venv/bin/python bench/job_fault_bench.py

Uses the settings as configured (JOB_HEARTBEAT_SECONDS, JOB_STALE_AFTER_SECONDS,
JOB_REAPER_INTERVAL_SECONDS from the environment or their defaults) on your own DATABASE_URL /
REDIS_URL. Worker A (prefork) runs a slow training job; once it reports progress the whole
worker is SIGKILLed; worker B starts at once with its embedded beat (as a restarted worker and
the beat service would) and the script waits for the job and its model version to be failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rfm_faults")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/4")
os.environ.setdefault("CHANNELS_PREFIX", "rfm-faults")
os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from rfm_portal.celery import app  # noqa: E402
from rfm_portal.mlops.models import Job, ModelVersion  # noqa: E402
from rfm_portal.mlops.progress import submit_job  # noqa: E402
from tests.mlops.job_tasks import train_slowly  # noqa: E402


def worker(name: str, beat: bool, workdir: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "celery", "-A", "rfm_portal", "worker", "--pool", "prefork", "--concurrency", "1",
        "--include", "tests.mlops.job_tasks", "--hostname", f"{name}@job-fault-bench", "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    if beat:
        command += ["--beat", "--schedule", str(workdir / "beat-schedule")]
    with open(workdir / f"{name}.log", "wb") as log:
        return subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def main() -> None:
    call_command("migrate", verbosity=0)
    workdir = Path(tempfile.mkdtemp(prefix="rfm-job-fault-bench-"))
    print(
        f"heartbeat every {settings.JOB_HEARTBEAT_SECONDS} s, stale after {settings.JOB_STALE_AFTER_SECONDS} s, "
        f"reaper every {settings.JOB_REAPER_INTERVAL_SECONDS} s; logs in {workdir}"
    )
    app.control.purge()
    job = submit_job(train_slowly, {"kind": "bench-fault", "seconds": 3600})
    first = worker("first", beat=False, workdir=workdir)
    second = None
    try:
        while True:
            job.refresh_from_db()
            if job.state == Job.State.RUNNING and job.progress == 15:
                break
            time.sleep(0.2)
        mv = job.model_version
        os.killpg(first.pid, signal.SIGKILL)
        killed = time.monotonic()
        first.wait(timeout=10)
        second = worker("second", beat=True, workdir=workdir)
        while time.monotonic() - killed < 900:
            job.refresh_from_db()
            if job.state == Job.State.FAILED:
                break
            time.sleep(0.5)
        elapsed = time.monotonic() - killed
        mv.refresh_from_db()
        print(f"SIGKILL -> job {job.state} after {elapsed:.1f} s; model version {mv.kind} v{mv.version}: {mv.status}")
        print(f"job error: {job.error}")
    finally:
        stop(first)
        if second is not None:
            stop(second)
        app.control.purge()
        ModelVersion.objects.filter(kind="bench-fault").delete()


if __name__ == "__main__":
    main()
