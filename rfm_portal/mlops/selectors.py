"""Reads for the Jobs and Models pages and the API."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from .models import Job, ModelVersion

RECENT_JOBS = 100


def job_list(limit: int = RECENT_JOBS) -> QuerySet[Job]:
    return Job.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]


def job_get(pk: int) -> Job:
    return get_object_or_404(Job.objects.select_related("created_by"), pk=pk)


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.select_related("trained_by").order_by("kind", "-version")


def model_version_get(pk: int) -> ModelVersion:
    return get_object_or_404(ModelVersion, pk=pk)


@dataclass
class KindVersions:
    kind: str
    active: ModelVersion | None = None
    can_roll_back: bool = False
    versions: list[ModelVersion] = field(default_factory=list)


def versions_by_kind() -> list[KindVersions]:
    """Every kind with its versions, newest first, and whether a rollback is possible."""
    groups: dict[str, KindVersions] = {}
    for mv in model_version_list():
        group = groups.setdefault(mv.kind, KindVersions(kind=mv.kind))
        group.versions.append(mv)
        if mv.status == ModelVersion.Status.ACTIVE:
            group.active = mv
        if mv.status == ModelVersion.Status.RETIRED and mv.activated_at is not None:
            group.can_roll_back = True
    return sorted(groups.values(), key=lambda g: g.kind)


def active_version(kind: str) -> ModelVersion | None:
    """The version of `kind` that serves pages and APIs, or None before the first promotion."""
    return ModelVersion.objects.filter(kind=kind, status=ModelVersion.Status.ACTIVE).first()


def latest_version(kind: str) -> ModelVersion | None:
    """The newest version of `kind` in any status (to show a running or failed training)."""
    return ModelVersion.objects.filter(kind=kind).order_by("-version").first()


MODELS_PAGE_SIZE = 25


def model_kinds() -> list[str]:
    return sorted(ModelVersion.objects.values_list("kind", flat=True).distinct())


def model_version_rows(kind: str | None = None) -> QuerySet[ModelVersion]:
    """Versions newest first for the paged Models table; the heavy JSON (curves, tables) is left out."""
    qs = ModelVersion.objects.select_related("trained_by").defer("model_card", "params")
    if kind:
        qs = qs.filter(kind=kind)
    return qs.order_by("-created_at", "-id")


def active_by_kind() -> list[KindVersions]:
    """One entry per kind: its active version and whether a rollback is possible (no version lists)."""
    groups: dict[str, KindVersions] = {kind: KindVersions(kind=kind) for kind in model_kinds()}
    for mv in ModelVersion.objects.filter(status=ModelVersion.Status.ACTIVE).defer("model_card", "params"):
        groups[mv.kind].active = mv
    rollback_kinds = set(
        ModelVersion.objects.filter(status=ModelVersion.Status.RETIRED, activated_at__isnull=False)
        .values_list("kind", flat=True)
        .distinct()
    )
    for kind in rollback_kinds:
        groups[kind].can_roll_back = True
    return list(groups.values())


def model_version_detail(pk: int) -> ModelVersion:
    return get_object_or_404(ModelVersion.objects.select_related("trained_by"), pk=pk)


def version_jobs(mv: ModelVersion) -> QuerySet[Job]:
    return Job.objects.filter(model_version=mv).order_by("-created_at")
