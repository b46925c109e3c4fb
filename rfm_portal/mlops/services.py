"""Model registry: versions, promotion and rollback, artifacts and the per-process model cache.

Status life cycle: training -> ready | failed; ready -> active (promote);
active -> retired (another version promoted) or -> ready (rolled back from).
`rollback` re-activates the most recently activated retired version, so successive
rollbacks walk back through the promotion history.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from .model_cards import refresh_model_card
from .models import Job, ModelVersion, ScoringRun
from .progress import current_job
from .signals import model_activated, model_training_failed

Status = ModelVersion.Status
ARTIFACT_FILENAME = "model.joblib"
_VERSION_ALLOCATION_ATTEMPTS = 20


class RegistryError(Exception):
    """A registry operation that the current state does not allow."""


class NoActiveModel(LookupError):
    pass


class ArtifactIntegrityError(RuntimeError):
    """The artifact on disk is not the one registered (sha256 mismatch)."""


# --- Versions -------------------------------------------------------------------


def start_model_version(
    kind: str, params: dict[str, Any], user=None, data_cutoff: datetime | None = None
) -> ModelVersion:
    """Register a training run under the next version number of its kind.

    Two trainings of one kind may start at once; the (kind, version) unique constraint
    decides, and the loser retries with the next number. Inside a job the version is linked
    to it at once, so a job whose worker dies takes its "training" version down with it.
    """
    for _ in range(_VERSION_ALLOCATION_ATTEMPTS):
        latest = ModelVersion.objects.filter(kind=kind).aggregate(v=Max("version"))["v"] or 0
        try:
            with transaction.atomic():
                mv = ModelVersion.objects.create(
                    kind=kind,
                    version=latest + 1,
                    status=Status.TRAINING,
                    params=params,
                    trained_by=user if getattr(user, "pk", None) else None,
                    data_cutoff=data_cutoff,
                )
        except IntegrityError:
            continue
        job = current_job.get()
        if job is not None:
            Job.objects.filter(pk=job.pk).update(model_version=mv)
            job.model_version = mv
        return mv
    raise RegistryError(f"could not allocate a version number for {kind!r}")


def complete_model_version(
    mv: ModelVersion, metrics: dict[str, Any], artifact_path: str | Path, model_card: str = ""
) -> ModelVersion:
    if mv.status != Status.TRAINING:
        raise RegistryError(f"{mv} is not training")
    mv.metrics = metrics
    mv.artifact_path = str(artifact_path)
    mv.artifact_sha256 = file_sha256(resolve_artifact(artifact_path))
    mv.model_card = model_card
    mv.status = Status.READY
    mv.save(update_fields=["metrics", "artifact_path", "artifact_sha256", "model_card", "status"])
    refresh_model_card(mv)  # the full card, for kinds whose app declares one (see model_cards)
    return mv


def fail_model_version(mv: ModelVersion, error: str) -> ModelVersion:
    """Record a failed training. Only this row changes, so the active version keeps serving."""
    ModelVersion.objects.filter(pk=mv.pk).update(status=Status.FAILED, error=error[:10_000])
    mv.refresh_from_db(fields=["status", "error"])
    model_training_failed.send(sender=ModelVersion, model_version=mv)
    return mv


def _lock_kind(kind: str) -> list[ModelVersion]:
    # Every promotion/rollback of a kind locks all its rows in id order, so they
    # serialise on the first row and cannot deadlock one another.
    return list(ModelVersion.objects.select_for_update().filter(kind=kind).order_by("id"))


def promote(mv: ModelVersion, user: Any = None) -> ModelVersion:
    """Make ``mv`` the active version of its kind; ``user`` (who promoted it) goes into its model card."""
    with transaction.atomic():
        rows = {row.pk: row for row in _lock_kind(mv.kind)}
        target = rows.get(mv.pk)
        if target is None:
            raise RegistryError(f"{mv} no longer exists")
        if target.status == Status.ACTIVE:
            return target
        if target.status not in (Status.READY, Status.RETIRED):
            raise RegistryError(f"only a ready or retired version can be promoted, not {target.status}")
        if _first_scoring_unfinished(target):
            raise RegistryError(f"{target} is still scoring its customers: it can be promoted once every customer "
                                "has a score")
        _activate(target, promoted_by=user)
    mv.refresh_from_db()
    return mv


def _first_scoring_unfinished(mv: ModelVersion) -> bool:
    # A training marks its version ready before its chunked scoring run has written every customer's
    # score (rfm_portal.mlops.scoring); promoted then, pages and exports would miss customers. A version
    # that has finished one run keeps a complete set of rows while it is re-scored, chunk by chunk.
    runs = set(mv.scoring_runs.values_list("state", flat=True).distinct())
    return ScoringRun.State.RUNNING in runs and ScoringRun.State.SUCCEEDED not in runs


def rollback(kind: str) -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    with transaction.atomic():
        rows = _lock_kind(kind)
        candidates = [
            row for row in rows if row.status == Status.RETIRED and row.activated_at is not None and row.artifact_sha256
        ]
        if not candidates:
            raise RegistryError(f"no earlier {kind} version to roll back to")
        target = max(candidates, key=lambda row: (row.activated_at, row.version))
        _activate(target, demote_to=Status.READY)
    return target


def _activate(target: ModelVersion, demote_to: str = Status.RETIRED, promoted_by: Any = None) -> None:
    # Within the kind lock: first demote the current active, then activate, so the
    # partial unique constraint never sees two active rows.
    demoted = list(ModelVersion.objects.filter(kind=target.kind, status=Status.ACTIVE).exclude(pk=target.pk))
    ModelVersion.objects.filter(kind=target.kind, status=Status.ACTIVE).update(status=demote_to)
    target.status = Status.ACTIVE
    target.activated_at = timezone.now()
    target.save(update_fields=["status", "activated_at"])
    refresh_model_card(target, promoted_by)
    for previous in demoted:  # their cards say they no longer serve
        previous.status = demote_to
        refresh_model_card(previous)
    model_activated.send(sender=ModelVersion, model_version=target, rollback=demote_to == Status.READY)
    # this process serves the new version at once (and again once the transaction commits)
    forget_active_check(target.kind)
    transaction.on_commit(lambda: forget_active_check(target.kind))


# --- Artifacts ------------------------------------------------------------------


def artifact_root() -> Path:
    return Path(settings.ARTIFACT_ROOT)


def resolve_artifact(path: str | Path) -> Path:
    """Stored paths are relative to ARTIFACT_ROOT, so the root can move (e.g. a volume)."""
    path = Path(path)
    return path if path.is_absolute() else artifact_root() / path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_artifact(kind: str, version: int, obj: Any, filename: str = ARTIFACT_FILENAME) -> tuple[str, str]:
    """Serialise obj to <ARTIFACT_ROOT>/<kind>/v<version>/<filename>; returns (relative path, sha256).

    Written to a temporary file in the same directory and renamed into place, so a
    reader never sees a half-written artifact.
    """
    relative = Path(kind) / f"v{version}" / filename
    target = artifact_root() / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".joblib")
    try:
        with os.fdopen(fd, "wb") as handle:
            joblib.dump(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        sha256 = file_sha256(Path(tmp_name))
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return str(relative), sha256


def load_artifact(path: str | Path, expected_sha256: str) -> Any:
    # Hash and unpickle the same bytes: nothing can swap the file in between.
    data = resolve_artifact(path).read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ArtifactIntegrityError(f"artifact {path} has sha256 {actual}, registry expects {expected_sha256}")
    return joblib.load(io.BytesIO(data))


@dataclass(frozen=True)
class ActiveModel:
    """The loaded active model of a kind and the registry row it came from."""

    pk: int
    version: int
    obj: Any
    sha256: str = ""  # a rewritten artifact (e.g. a customer erased from it) is reloaded too


_cache: dict[str, ActiveModel] = {}
_checked_at: dict[str, float] = {}  # kind -> monotonic time the active version id was last read
_cache_lock = threading.Lock()


def load_active_entry(kind: str) -> ActiveModel:
    """The active model of a kind, loaded once per process and swapped on promotion.

    The active version's id is read (one indexed query) at most every ACTIVE_MODEL_RECHECK_SECONDS
    (settings; 0 = on every call), so single-row scoring needs no database connection in between;
    the artifact is only read when that id changes. A promotion or rollback in this process is
    seen at once; one in another process within the recheck interval.
    """
    fresh = cached_active_entry(kind)
    if fresh is not None:
        return fresh
    cached = _cache.get(kind)
    checked = time.monotonic()
    active = (
        ModelVersion.objects.filter(kind=kind, status=Status.ACTIVE)
        .values_list("pk", "version", "artifact_path", "artifact_sha256")
        .first()
    )
    if active is None:
        raise NoActiveModel(f"no active {kind} model")
    pk, version, path, sha256 = active
    if cached is not None and cached.pk == pk and cached.sha256 == sha256:
        _checked_at[kind] = checked
        return cached
    with _cache_lock:
        cached = _cache.get(kind)
        if cached is None or cached.pk != pk or cached.sha256 != sha256:
            cached = ActiveModel(pk=pk, version=version, obj=load_artifact(path, sha256), sha256=sha256)
            _cache[kind] = cached
        _checked_at[kind] = checked
        return cached


def cached_active_entry(kind: str) -> ActiveModel | None:
    """The active model of a kind if load_active_entry would return it without a query (checked within
    ACTIVE_MODEL_RECHECK_SECONDS); None otherwise. For callers that must not wait on the database (the scoring
    fast path on the event loop)."""
    interval = float(getattr(settings, "ACTIVE_MODEL_RECHECK_SECONDS", 0))
    cached = _cache.get(kind)
    checked = _checked_at.get(kind)
    if cached is not None and interval > 0 and checked is not None and time.monotonic() - checked < interval:
        return cached
    return None


def load_active(kind: str) -> Any:
    """The active model object of a kind (see load_active_entry)."""
    return load_active_entry(kind).obj


_VERSION_CACHE_SIZE = 4
_version_cache: dict[int, ActiveModel] = {}  # ModelVersion pk -> loaded artifact, most recent last


def load_version(mv: ModelVersion) -> Any:
    """The artifact of one version (active or not, e.g. a ready one being scored), loaded once per process.

    Batch scoring loads the version it scores, not "the active one" (which may change meanwhile).
    A few versions are kept (a worker scores one version's chunks after another's); a rewritten
    artifact (other sha256) is reloaded.
    """
    with _cache_lock:
        cached = _version_cache.pop(mv.pk, None)
        if cached is None or cached.sha256 != mv.artifact_sha256:
            if not mv.artifact_path:
                raise RegistryError(f"{mv} has no artifact yet")
            cached = ActiveModel(pk=mv.pk, version=mv.version, obj=load_artifact(mv.artifact_path,
                                 mv.artifact_sha256), sha256=mv.artifact_sha256)
        _version_cache[mv.pk] = cached
        while len(_version_cache) > _VERSION_CACHE_SIZE:
            _version_cache.pop(next(iter(_version_cache)))
        return cached.obj


def forget_active_check(kind: str | None = None) -> None:
    """Make the next load_active re-read the active version id (after a promotion in this process)."""
    if kind is None:
        _checked_at.clear()
    else:
        _checked_at.pop(kind, None)


def clear_model_cache() -> None:
    with _cache_lock:
        _cache.clear()
        _checked_at.clear()
        _version_cache.clear()
