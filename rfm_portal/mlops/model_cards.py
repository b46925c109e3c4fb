"""Model cards: one markdown template for every model kind, filled from sections each app declares.

Apps register, from their ``AppConfig.ready``, a function that turns a ``ModelVersion`` into
:class:`CardSections` (``register_model_card("churn", build)``); the core never imports an app.
:func:`render_model_card` adds what the registry itself knows (version, status, data cut-off,
training data sources, who trained and promoted it) and the per-group performance stored in
``metrics["group_performance"]``. The registry writes the card when a version is completed
(``complete_model_version``) and refreshes it on promotion and rollback; ``/models/<id>/card.md``
downloads it. docs/model_card.md explains each section.

Apps also register *group labellers* (``register_group_labeller("rfm_segment", ...)``): functions
that give each customer a group label as of a past date, so one app's per-group evaluation can
break results down by another app's segments without importing it. Country is built in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from django.db.models import Q

from .models import ModelVersion

logger = logging.getLogger(__name__)

GROUPING_LABELS = {"country": "Country", "rfm_segment": "RFM segment"}


@dataclass(frozen=True)
class CardSections:
    """What a capability says about one of its versions (every field is markdown, none may be empty)."""

    title: str
    intended_use: str
    intended_users: str
    out_of_scope: str
    training_data: str
    features: str
    metrics: str
    validation: str
    limitations: str
    ethics: str
    # why there is no per-group table for this kind ("" when the version stores one)
    group_note: str = ""


CardBuilder = Callable[[ModelVersion], CardSections]
_BUILDERS: dict[str, CardBuilder] = {}


def register_model_card(kind: str, build: CardBuilder) -> None:
    """Declare how versions of ``kind`` describe themselves (call from AppConfig.ready; idempotent)."""
    _BUILDERS[kind] = build


def registered_kinds() -> list[str]:
    return sorted(_BUILDERS)


# --- group labels ---------------------------------------------------------------------------------

GroupLabeller = Callable[[list[int], datetime], dict[int, str]]
_LABELLERS: dict[str, GroupLabeller] = {}


def register_group_labeller(name: str, build: GroupLabeller) -> None:
    """``build(customer_pks, as_of)`` -> {pk: label} for customers as they were just before ``as_of``."""
    _LABELLERS[name] = build


def group_labels(customer_pks: Iterable[int], as_of: datetime) -> dict[str, list[str]]:
    """One label list per grouping (``country`` + every registered labeller), aligned with ``customer_pks``."""
    from rfm_portal.customers.models import Customer

    pks = [int(pk) for pk in customer_pks]
    countries = dict(Customer.objects.filter(pk__in=pks).values_list("pk", "country")) if pks else {}
    out = {"country": [countries.get(pk) or "" for pk in pks]}
    for name, build in sorted(_LABELLERS.items()):
        try:
            labels = build(pks, as_of)
        except Exception:  # a grouping that cannot be built (e.g. no purchases yet) is left out, not fatal
            logger.exception("group labeller %s failed", name)
            continue
        out[name] = [labels.get(pk, "") for pk in pks]
    return out


# --- rendering ------------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _training_sources(mv: ModelVersion) -> str:
    """The imports whose rows the version could have read (finished before it was created)."""
    from rfm_portal.customers.models import ImportJob

    imports = list(
        ImportJob.objects.filter(status=ImportJob.Status.SUCCEEDED, created_at__lte=mv.created_at)
        .filter(Q(finished_at__isnull=True) | Q(finished_at__lte=mv.created_at))
        .order_by("created_at")
        .values_list("kind", "file_name", "rows_inserted", "created_at")
    )
    if not imports:
        return "Source imports: none recorded (data loaded outside the import page, e.g. the demo set-up)."
    lines = [f"Source imports ({len(imports)}):"]
    for kind, name, rows, at in imports[-10:]:
        lines.append(f"- {at:%Y-%m-%d} {kind}: `{name}` ({rows:,} new rows)")
    if len(imports) > 10:
        lines.append(f"- … and {len(imports) - 10} earlier imports")
    return "\n".join(lines)


def group_performance_markdown(perf: dict[str, Any] | None) -> str:
    """The per-group section: one table per grouping, the rule, and the flagged groups first."""
    if not perf:
        return ""
    o = perf["overall"]
    label = perf["label"]
    parts = [
        f"Key metric: **{label}** ({'higher' if perf['higher_is_better'] else 'lower'} is better). "
        f"Overall {_fmt(o['value'])} (95 % interval {_fmt(o['ci_low'])}–{_fmt(o['ci_high'])}, {o['n']:,} rows).",
        f"Rule: {perf['rule']}.",
    ]
    flagged = perf.get("flagged") or []
    if flagged:
        parts.append("**Groups that do markedly worse:** " + "; ".join(
            f"{GROUPING_LABELS.get(f['grouping'], f['grouping'])} {f['group']} ({label} {_fmt(f['value'])}, "
            f"interval {_fmt(f['ci_low'])}–{_fmt(f['ci_high'])}, {f['n']:,} rows)" for f in flagged) + ".")
    else:
        parts.append("No group does markedly worse than the whole by this rule.")
    extra_keys = sorted(k for k in o if k not in ("n", "value", "ci_low", "ci_high"))
    for grouping, rows in perf["by"].items():
        header = ["Group", "Rows", label, "95 % interval", *[k.replace("_", " ") for k in extra_keys], "Judgement"]
        reference = (perf.get("reference") or {}).get(grouping)
        table = [f"**By {GROUPING_LABELS.get(grouping, grouping).lower()}** (typical group: {_fmt(reference)})", "",
                 "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in rows:
            verdict = ("markedly worse" if r["flagged"] else "in line") if r["judged"] else "too few to judge"
            interval = f"{_fmt(r['ci_low'])}–{_fmt(r['ci_high'])}" if r["judged"] else "–"
            table.append("| " + " | ".join([str(r["group"]).replace("|", "/"), f"{r['n']:,}", _fmt(r["value"]),
                                             interval, *[_fmt(r.get(k)) for k in extra_keys], verdict]) + " |")
        parts.append("\n".join(table))
    return "\n\n".join(parts)


def _who(mv: ModelVersion, promoted_by: Any = None) -> str:
    trainer = mv.trained_by.get_username() if mv.trained_by_id and mv.trained_by else "a scheduled or system run"
    lines = [f"- Version: {mv.kind} v{mv.version} (registry id {mv.pk}), status **{mv.get_status_display()}**",
             f"- Trained: {mv.created_at:%Y-%m-%d %H:%M} UTC by {trainer}"]
    if mv.artifact_sha256:
        lines.append(f"- Artifact: `{mv.artifact_path}` (sha256 `{mv.artifact_sha256[:16]}…`)")
    if mv.activated_at:
        by = promoted_by.get_username() if getattr(promoted_by, "pk", None) else None
        lines.append(f"- Promoted (made active): {mv.activated_at:%Y-%m-%d %H:%M} UTC"
                     + (f" by {by}" if by else " (by the training run, or an admin on the Models page)"))
    else:
        lines.append("- Promoted: not yet (this version has never served)")
    return "\n".join(lines)


SECTION_TITLES = (
    ("intended_use", "Intended use"),
    ("intended_users", "Intended users"),
    ("out_of_scope", "Out-of-scope uses"),
    ("training_data", "Training data"),
    ("features", "Features"),
    ("metrics", "Metrics (with confidence intervals)"),
    ("validation", "Validation method"),
    ("group_performance", "Performance by group"),
    ("limitations", "Limitations"),
    ("ethics", "Ethical considerations"),
    ("version", "Version, training and promotion"),
)


def card_sections(mv: ModelVersion, promoted_by: Any = None) -> tuple[str, dict[str, str]] | None:
    """(title, {section key: markdown}) for a version, or None when its kind has no registered builder."""
    build = _BUILDERS.get(mv.kind)
    if build is None:
        return None
    sections = build(mv)
    body = {f.name: getattr(sections, f.name).strip() for f in fields(sections) if f.name not in ("title",)}
    cutoff = f"Data cut-off: {mv.data_cutoff:%Y-%m-%d %H:%M} UTC (nothing at or after it was read)." \
        if mv.data_cutoff else "Data cut-off: not recorded."
    body["training_data"] = "\n\n".join([body["training_data"], cutoff, _training_sources(mv)])
    group_md = group_performance_markdown((mv.metrics or {}).get("group_performance"))
    body["group_performance"] = group_md or body.pop("group_note") or "Not computed for this kind of model."
    body.pop("group_note", None)
    body["version"] = _who(mv, promoted_by)
    return sections.title, body


def render_model_card(mv: ModelVersion, promoted_by: Any = None) -> str | None:
    """The markdown card of a version (None when its kind declares no card)."""
    built = card_sections(mv, promoted_by)
    if built is None:
        return None
    title, body = built
    out = [f"# {title} v{mv.version}", ""]
    for key, heading in SECTION_TITLES:
        out += [f"## {heading}", "", body[key] or "(not stated)", ""]
    return "\n".join(out).rstrip() + "\n"


def refresh_model_card(mv: ModelVersion, promoted_by: Any = None) -> None:
    """Regenerate and store the card of ``mv`` (kept as it is when its kind declares no card).

    A card is documentation: a failure to build it is logged and never fails training or promotion.
    """
    try:
        card = render_model_card(mv, promoted_by)
    except Exception:
        logger.exception("could not build the model card of %s", mv)
        return
    if card is not None:
        ModelVersion.objects.filter(pk=mv.pk).update(model_card=card)
        mv.model_card = card
