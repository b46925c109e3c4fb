"""The customer table: one row per customer with every capability's score beside the transaction totals.

The customers app owns the table but not the scores. Each capability app contributes, from its
AppConfig.ready(), the columns and filters it knows about for its *active* model version:

    register_table_contribution(TableContribution(
        order=20, name="cltv", annotate=annotate_cltv,
        columns=[TableColumn("clv_p50", "CLV (P50)", kind="money")],
        filters=[TableFilter("min_clv", "CLV at least", kind="number", apply=..., validate=...)],
    ))

``annotate(qs)`` adds the columns to a Customer queryset, as SQL (a LEFT JOIN on the active version's
scores, see ``FilteredRelation``), so sorting, filtering and paging all happen in one PostgreSQL query.
Every filter is also registered as an audience filter (same key, same apply), so "save as audience"
stores the table's filters and ``audience_customer_ids`` resolves them against the then-active models.
A filter's ``apply`` must be self-contained (it may not rely on the table's annotations): audiences
apply it to a plain ``Customer.objects.all()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.db import connection, transaction
from django.db.models import F, FilteredRelation, Q, QuerySet, Value

from .audiences import AudienceError, register_audience_filter
from .models import Customer


@dataclass(frozen=True)
class TableColumn:
    """``key`` is the annotation name; ``kind`` says how to format it: text, int, money, percent, date, delta."""

    key: str
    label: str
    kind: str = "text"
    help: str = ""
    sortable: bool = True
    # For columns shown as "P50 (P10–P90)" etc.: extra annotation keys exported as their own CSV columns.
    extra: tuple[tuple[str, str], ...] = ()
    choices: dict[str, str] | None = None  # stored value -> label (e.g. uplift groups)
    highlight_above: float | None = None  # "delta" columns: values at least this are marked (e.g. risk rising)


@dataclass(frozen=True)
class TableFilter:
    """A filter of the table and of audiences. ``kind``: number (one value), choices (several), flag (on/off)."""

    key: str
    label: str
    kind: str
    apply: Callable[[QuerySet, Any], QuerySet]
    validate: Callable[[Any], Any]
    choices: Callable[[], Sequence[tuple[str, str]]] | None = None
    help: str = ""


@dataclass(frozen=True)
class TableContribution:
    order: int
    name: str
    annotate: Callable[[QuerySet], QuerySet]
    columns: Sequence[TableColumn] = field(default_factory=tuple)
    filters: Sequence[TableFilter] = field(default_factory=tuple)


_CONTRIBUTIONS: dict[str, TableContribution] = {}


def register_table_contribution(contribution: TableContribution) -> None:
    """Add (or replace: ready() can run twice in tests) an app's columns and filters; also registers the
    filters as audience filters."""
    _CONTRIBUTIONS[contribution.name] = contribution
    for flt in contribution.filters:
        register_audience_filter(flt.key, label=flt.label, validate=flt.validate, apply=flt.apply)


def contributions() -> list[TableContribution]:
    return sorted(_CONTRIBUTIONS.values(), key=lambda c: c.order)


def join_version(qs: QuerySet, relation: str, version: Any, fields: dict[str, tuple[str, Any]],
                 alias: str | None = None) -> QuerySet:
    """Annotate ``fields`` ({name: (score field, output field)}) from ``relation`` (a reverse FK of Customer, one
    row per customer and version) restricted to ``version``: a LEFT JOIN, so unscored customers get NULL.
    Without a version (no model trained yet) the columns are NULL."""
    if version is None:
        return qs.annotate(**{name: Value(None, output_field=out) for name, (_, out) in fields.items()})
    alias = alias or f"{relation}_v"
    qs = qs.annotate(**{alias: FilteredRelation(relation, condition=Q(**{f"{relation}__model_version": version}))})
    return qs.annotate(**{name: F(f"{alias}__{src}") for name, (src, _) in fields.items()})


# --- The customers app's own part: transaction totals, country and text search ---------------------------


def _annotate_totals(qs: QuerySet) -> QuerySet:
    """Orders, net revenue and last purchase from the stored per-customer totals (``dashboard.CustomerTotals``,
    made current here when the data changed), so sorting by them reads an index instead of aggregating every
    customer's transactions per view."""
    from rfm_portal.dashboard import summaries

    summaries.ensure_customer_totals()
    # Every customer has a totals row once they are current: an inner join, so a sort by revenue, orders or last
    # purchase reads the index on the totals for the page's rows instead of sorting every joined customer.
    return qs.filter(stored_totals__isnull=False).annotate(
        orders=F("stored_totals__orders"),
        revenue=F("stored_totals__revenue"),
        last_purchase=F("stored_totals__last_purchase"),
    )


def _search_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AudienceError("Expected a non-empty text.")
    return value.strip()[:100]


def apply_search(qs: QuerySet, text: str) -> QuerySet:
    """Partial text: anywhere in the customer id or the country (case-insensitive)."""
    return qs.filter(Q(external_id__icontains=text) | Q(country__icontains=text))


def _country_choices() -> list[tuple[str, str]]:
    from .selectors import countries

    return [(c, c) for c in countries()]


def _countries(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise AudienceError("Expected a non-empty list of countries.")
    return [v.strip() for v in value][:1000]


register_table_contribution(TableContribution(
    order=0, name="customers", annotate=_annotate_totals,
    columns=[],  # orders, revenue, last purchase are placed by the template itself, after the scores
    filters=[
        TableFilter("search", "Id or country contains", "text", apply=apply_search, validate=_search_text),
        TableFilter("countries", "Country is one of", "choices", validate=_countries, choices=_country_choices,
                    apply=lambda qs, v: qs.filter(country__in=v)),
    ],
))

BASE_COLUMNS = (
    TableColumn("orders", "Orders", kind="int", help="Distinct purchase invoices (returns not counted)."),
    TableColumn("revenue", "Net revenue", kind="money", help="All purchases minus returns."),
    TableColumn("last_purchase", "Last purchase", kind="date"),
)


# --- Reading the table ------------------------------------------------------------------------------------


def table_columns() -> list[TableColumn]:
    return [column for c in contributions() for column in c.columns] + list(BASE_COLUMNS)


def table_filters() -> list[TableFilter]:
    return [flt for c in contributions() for flt in c.filters]


def parse_filters(params: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The table's filters from a query string (``QueryDict``): (clean spec, {key: error}). Empty = not set."""
    spec: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for flt in table_filters():
        if flt.kind == "choices":
            raw: Any = [v for v in params.getlist(flt.key) if v.strip()]
        elif flt.kind == "flag":
            raw = True if params.get(flt.key) in ("1", "on", "true") else None
        elif flt.kind == "number":
            text = (params.get(flt.key) or "").strip().replace(",", "")
            if not text:
                continue
            try:
                raw = float(text)
            except ValueError:
                errors[flt.key] = "Not a number."
                continue
        else:  # text; ``q`` is the older name of the search box, still used by links
            raw = (params.get(flt.key) or (params.get("q") if flt.key == "search" else "") or "").strip() or None
        if not raw:
            continue
        try:
            spec[flt.key] = flt.validate(raw)
        except AudienceError as exc:
            errors[flt.key] = str(exc)
    return spec, errors


def default_order() -> str:
    """Value first: the CLV (P50) when a model contributes it, else net revenue (also the cheaper sort at scale:
    revenue is computed per customer from the transactions, CLV is a stored score)."""
    return "-clv_p50" if any(column.key == "clv_p50" for column in table_columns()) else "-revenue"


def customer_table(spec: dict[str, Any], order: str = "") -> QuerySet[Customer]:
    """Customers with every contributed column, filtered by ``spec`` and sorted by ``order`` (a column key,
    ``-`` for descending; nulls last either way). One SQL query (the CSV streams it); a page reads
    ``customer_table_rows`` instead."""
    return _sorted(_annotated(spec), table_order(order))


def _sorted(qs: QuerySet[Customer], order: str) -> QuerySet[Customer]:
    field_name = order.lstrip("-")
    expression = F(field_name).desc(nulls_last=True) if order.startswith("-") else F(field_name).asc(nulls_last=True)
    return qs.order_by(expression, "external_id")


# Columns every customer has a value in: sorting by them needs no "valued first, then the rest" split.
_NEVER_EMPTY = ("external_id", "country")


def table_order(order: str) -> str:
    """``order`` if the table can sort by it, else the default order."""
    sortable = {column.key for column in table_columns() if column.sortable} | {"external_id", "country"}
    return order if order.lstrip("-") in sortable else default_order()


def _annotated(spec: dict[str, Any]) -> QuerySet[Customer]:
    qs = Customer.objects.all()
    filters = {flt.key: flt for flt in table_filters()}
    for key, value in spec.items():
        qs = filters[key].apply(qs, value)
    for contribution in contributions():
        qs = contribution.annotate(qs)
    return qs


class TableRows:
    """A ``Paginator``'s object list over the table: the rows of ``parts`` (ordered querysets of the same annotated
    customers) one part after the other, each page read by a late row look-up.

    A page first reads the customer pks of its slice, a narrow query: PostgreSQL leaves out the joins on score
    tables that neither the filters nor the order use, so an ordered index on the sort column is walked for just
    the slice. Then it reads the full rows of those customers (``rows``, any order) and puts them in the slice's
    order. Counts are read once per request.
    """

    def __init__(self, parts: Sequence[QuerySet[Customer]], rows: QuerySet[Customer],
                 counts: Sequence[int] | None = None) -> None:
        self.parts = list(parts)
        self.rows = rows.order_by()
        if counts is not None:  # known (stored) counts of the parts
            self.part_counts = list(counts)

    @cached_property
    def part_counts(self) -> list[int]:
        return [part.count() for part in self.parts]

    def count(self) -> int:
        return sum(self.part_counts)

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[Customer]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("TableRows are read by slices (a Paginator's pages).")
        start, stop = index.start or 0, self.count() if index.stop is None else index.stop
        pks: list[int] = []
        offset = 0
        for part, size in zip(self.parts, self.part_counts, strict=True):
            low, high = max(start - offset, 0), min(stop - offset, size)
            if low < high:
                pks += part.values_list("pk", flat=True)[low:high]
            offset += size
        by_pk = {row.pk: row for row in self.rows.filter(pk__in=pks)}
        return [by_pk[pk] for pk in pks if pk in by_pk]  # a customer erased in between is left out


def valued_first(qs: QuerySet[Customer], order: str, then: Sequence[Any] = ("external_id",)
                 ) -> list[QuerySet[Customer]]:
    """``qs`` sorted by ``order`` (an annotation, ``-`` for descending) with nulls last, as two parts for
    ``TableRows``: the customers with a value, sorted by it and then by ``then``; then the ones without, by
    ``then``. The first part sorts plainly (DESC / ASC, no NULLS clause: it has no nulls), which is the order a
    descending index on the column reads forwards and backwards, so PostgreSQL can walk it for a page's slice; a
    sort with nulls last over every customer cannot (an unscored customer's NULL comes from a LEFT JOIN)."""
    key = order.lstrip("-")
    valued = F(key).desc() if order.startswith("-") else F(key).asc()
    return [qs.filter(**{f"{key}__isnull": False}).order_by(valued, *then),
            qs.filter(**{f"{key}__isnull": True}).order_by(*then)]


def customer_table_rows(spec: dict[str, Any], order: str = "") -> TableRows:
    """The rows of ``customer_table(spec, order)``, in the same order, for paging (see ``valued_first``).
    Without filters the counts are the stored ones (``table_counts``)."""
    order = table_order(order)
    key = order.lstrip("-")
    qs = _annotated(spec)
    counts = table_counts() if not spec else None
    if key in _NEVER_EMPTY:
        return TableRows([_sorted(qs, order)], qs, counts=[counts["customers"]] if counts else None)
    return TableRows(valued_first(qs, order), qs,
                     counts=[counts[key], counts["customers"] - counts[key]] if counts else None)


def compute_counts(versions: dict[str, Any]) -> dict[str, Any]:
    """Customers in the unfiltered table, and per sortable column those with a value in it: one pass over the
    joined table (``COUNT(column)`` counts the non-null values). Stored as the page summary
    ``customers.table_counts``, with the time of the stored totals it counted (see ``table_counts``)."""
    from django.db.models import Count

    from rfm_portal.dashboard.models import PageSummary

    keys = [column.key for column in table_columns() if column.sortable]
    with without_jit():
        counts = _annotated({}).order_by().aggregate(customers=Count("pk"),
                                                     **{f"valued_{key}": Count(key) for key in keys})
    counts = {"customers": counts["customers"], **{key: counts[f"valued_{key}"] for key in keys}}
    totals = PageSummary.objects.filter(name="customer_totals").values_list("computed_at", flat=True).first()
    return {**counts, "totals_at": totals.isoformat() if totals else None}


def table_counts() -> dict[str, Any]:
    """The stored counts of the unfiltered table, counted against the stored totals the table joins now (the
    totals may be rebuilt on their own, e.g. after stream events: the counts are then recounted, so the pages
    split exactly where the rows change from valued to not)."""
    from rfm_portal.dashboard import summaries
    from rfm_portal.dashboard.models import PageSummary

    summaries.ensure_customer_totals()
    totals = PageSummary.objects.filter(name="customer_totals").values_list("computed_at", flat=True).first()
    counts = summaries.get("customers.table_counts")
    if totals is None or counts.get("totals_at") != totals.isoformat():
        counts = summaries.refresh("customers.table_counts")
    return counts


@contextmanager
def without_jit() -> Iterator[None]:
    """Run the table's queries with PostgreSQL's JIT off (in a read-only transaction).

    The planner's cost for a 100k-row table with a few joins passes jit_above_cost, and compiling the
    expressions then takes longer (~2 s measured) than running the query (see bench/customer_table_bench.py).
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL jit = off")
        yield


# --- Validators the contributions share ------------------------------------------------------------------


def choice_list(allowed: Callable[[], Sequence[str]] | None = None) -> Callable[[Any], list[str]]:
    """A validator for a non-empty list of strings, each among ``allowed()`` when given."""

    def validate(value: Any) -> list[str]:
        if isinstance(value, str | int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str | int) for v in value):
            raise AudienceError("Expected a non-empty list of values.")
        values = [str(v).strip() for v in value]
        if allowed is not None:
            known = set(allowed())
            unknown = [v for v in values if v not in known]
            if unknown:
                raise AudienceError(f"Unknown value(s): {', '.join(unknown[:5])}.")
        return list(dict.fromkeys(values))

    return validate


def number(low: float | None = None, high: float | None = None) -> Callable[[Any], float]:
    def validate(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or value != value or abs(value) > 1e15:
            raise AudienceError("Expected a finite number.")
        if (low is not None and value < low) or (high is not None and value > high):
            raise AudienceError(f"Expected a number between {low:g} and {high:g}.")
        return float(value)

    return validate


def flag(value: Any) -> bool:
    if value is not True:
        raise AudienceError("Expected true.")
    return True
