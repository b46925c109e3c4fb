"""Audience filters: the keys a filter audience may use, each turning a Customer queryset into a narrower one.

The customers app knows the customer table's own columns; capability apps add their keys
(segment, CLV, churn risk, uplift group …) from their AppConfig.ready():

    register_audience_filter("min_p_alive", apply=..., validate=..., label="P(alive) at least")

``validate(value)`` returns the cleaned value or raises ``AudienceError``; ``apply(qs, value)``
returns the filtered queryset. Unknown keys are refused when an audience is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet, Sum


class AudienceError(ValueError):
    """An audience that cannot be saved as asked (bad name, unknown filter key, bad value)."""


@dataclass(frozen=True)
class AudienceFilter:
    key: str
    label: str
    validate: Callable[[Any], Any]
    apply: Callable[[QuerySet, Any], QuerySet]


_FILTERS: dict[str, AudienceFilter] = {}


def register_audience_filter(key: str, *, label: str, validate: Callable[[Any], Any],
                             apply: Callable[[QuerySet, Any], QuerySet]) -> None:
    _FILTERS[key] = AudienceFilter(key, label, validate, apply)


def audience_filters() -> dict[str, AudienceFilter]:
    return dict(_FILTERS)


def clean_filter(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise AudienceError("The filter must be an object of {key: value}.")
    unknown = sorted(set(spec) - set(_FILTERS))
    if unknown:
        raise AudienceError(f"Unknown filter key(s): {', '.join(unknown)}. Known: {', '.join(sorted(_FILTERS))}.")
    return {key: _FILTERS[key].validate(value) for key, value in spec.items()}


def apply_filter(qs: QuerySet, spec: dict[str, Any]) -> QuerySet:
    for key, value in spec.items():
        if key not in _FILTERS:
            raise AudienceError(f"Unknown filter key {key!r} (its app is not installed?).")
        qs = _FILTERS[key].apply(qs, value)
    return qs


def _string_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise AudienceError("Expected a non-empty list of strings.")
    if len(value) > 100_000:
        raise AudienceError("At most 100,000 values.")
    return [v.strip() for v in value]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) > 1e15:
        raise AudienceError("Expected a finite number.")
    return float(value)


register_audience_filter(
    "countries", label="Country is one of", validate=_string_list,
    apply=lambda qs, v: qs.filter(country__in=v),
)
register_audience_filter(
    "external_ids", label="Customer id is one of", validate=_string_list,
    apply=lambda qs, v: qs.filter(external_id__in=v),
)
register_audience_filter(
    "min_revenue", label="Net revenue at least", validate=_number,
    apply=lambda qs, v: qs.annotate(_revenue=Sum("transactions__amount")).filter(_revenue__gte=v),
)
