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
