"""Reads over customers and transactions. Aggregation happens in the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncMonth

from .models import CampaignHistory, Customer, ImportJob, Transaction

ACTIVE_WINDOW_DAYS = 90
ZERO = Decimal("0")


@dataclass(frozen=True)
class OverviewKPIs:
    customers: int
    active_customers: int
    active_window_days: int
    as_of: datetime | None
    revenue: Decimal
    orders: int
    average_order_value: Decimal | None
    repeat_customers: int
    repeat_purchase_rate: float | None
    returns_value: Decimal
    first_transaction: datetime | None


def overview_kpis() -> OverviewKPIs:
    """Headline figures. 'Active' = bought within ACTIVE_WINDOW_DAYS of the last transaction."""
    span = Transaction.objects.aggregate(first=Min("invoiced_at"), last=Max("invoiced_at"))
    as_of = span["last"]
    purchases = Transaction.objects.filter(is_return=False)
    totals = Transaction.objects.aggregate(
        revenue=Coalesce(Sum("amount"), ZERO),
        returns=Coalesce(Sum("amount", filter=Q(is_return=True)), ZERO),
    )
    order_totals = purchases.aggregate(gross=Coalesce(Sum("amount"), ZERO), orders=Count("invoice", distinct=True))
    buyers = purchases.values("customer_id").distinct().count()
    repeaters = (
        Customer.objects.annotate(
            purchase_orders=Count("transactions__invoice", distinct=True, filter=Q(transactions__is_return=False))
        )
        .filter(purchase_orders__gte=2)
        .count()
    )
    active = 0
    if as_of is not None:
        window_start = as_of - timedelta(days=ACTIVE_WINDOW_DAYS)
        active = purchases.filter(invoiced_at__gt=window_start).values("customer_id").distinct().count()
    orders = order_totals["orders"]
    return OverviewKPIs(
        customers=Customer.objects.count(),
        active_customers=active,
        active_window_days=ACTIVE_WINDOW_DAYS,
        as_of=as_of,
        revenue=totals["revenue"],
        orders=orders,
        average_order_value=(order_totals["gross"] / orders) if orders else None,
        repeat_customers=repeaters,
        repeat_purchase_rate=(repeaters / buyers) if buyers else None,
        returns_value=totals["returns"],
        first_transaction=span["first"],
    )


def compute_countries(versions: dict) -> dict[str, list[str]]:
    """Every customer's country, sorted (stored as the page summary ``customers.countries``)."""
    return {"countries": list(Customer.objects.exclude(country="").values_list("country", flat=True)
                              .distinct().order_by("country"))}


def countries() -> list[str]:
    """The countries of the customers (the stored list, recomputed when the data changed)."""
    from rfm_portal.dashboard import summaries

    return summaries.get("customers.countries")["countries"]


def monthly_revenue() -> list[dict]:
    """Net revenue, gross sales, returns and buying customers per calendar month."""
    rows = (
        Transaction.objects.annotate(month=TruncMonth("invoiced_at"))
        .values("month")
        .annotate(
            revenue=Sum("amount"),
            returns=Coalesce(Sum("amount", filter=Q(is_return=True)), ZERO),
            customers=Count("customer_id", distinct=True),
            orders=Count("invoice", distinct=True, filter=Q(is_return=False)),
        )
        .order_by("month")
    )
    return list(rows)


def customer_list(search: str = "", order: str = "-revenue") -> QuerySet[Customer]:
    """Customers with their totals; `search` matches id (prefix) or country (exact, case-insensitive)."""
    qs = Customer.objects.annotate(
        orders=Count("transactions__invoice", distinct=True, filter=Q(transactions__is_return=False)),
        revenue=Coalesce(Sum("transactions__amount"), ZERO),
        last_purchase=Max("transactions__invoiced_at", filter=Q(transactions__is_return=False)),
    )
    search = search.strip()
    if search:
        qs = qs.filter(Q(external_id__istartswith=search) | Q(country__iexact=search))
    sortable = ("revenue", "orders", "last_purchase", "external_id")
    allowed = {*sortable, *(f"-{name}" for name in sortable)}
    if order not in allowed:
        order = "-revenue"
    nulls = {"nulls_last": True} if order.startswith("-") else {"nulls_first": True}
    field = order.lstrip("-")
    expression = F(field).desc(**nulls) if order.startswith("-") else F(field).asc(**nulls)
    return qs.order_by(expression, "external_id")


@dataclass(frozen=True)
class CustomerTotals:
    orders: int
    lines: int
    gross_sales: Decimal
    returns_value: Decimal
    net_revenue: Decimal
    average_order_value: Decimal | None
    first_purchase: datetime | None
    last_purchase: datetime | None
    distinct_products: int


def customer_totals(customer: Customer) -> CustomerTotals:
    agg = Transaction.objects.filter(customer=customer).aggregate(
        orders=Count("invoice", distinct=True, filter=Q(is_return=False)),
        lines=Count("id"),
        gross=Coalesce(Sum("amount", filter=Q(is_return=False)), ZERO),
        returns=Coalesce(Sum("amount", filter=Q(is_return=True)), ZERO),
        first=Min("invoiced_at", filter=Q(is_return=False)),
        last=Max("invoiced_at", filter=Q(is_return=False)),
        products=Count("product_id", distinct=True),
    )
    return CustomerTotals(
        orders=agg["orders"],
        lines=agg["lines"],
        gross_sales=agg["gross"],
        returns_value=agg["returns"],
        net_revenue=agg["gross"] + agg["returns"],
        average_order_value=(agg["gross"] / agg["orders"]) if agg["orders"] else None,
        first_purchase=agg["first"],
        last_purchase=agg["last"],
        distinct_products=agg["products"],
    )


def customer_invoices(customer: Customer) -> list[dict]:
    """One row per invoice: time, value, lines, whether it is a return. Newest first."""
    return list(
        Transaction.objects.filter(customer=customer)
        .values("invoice", "is_return")
        .annotate(invoiced_at=Min("invoiced_at"), amount=Sum("amount"), lines=Count("id"), items=Sum("quantity"))
        .order_by("-invoiced_at", "invoice")
    )


def customer_transactions(customer: Customer, limit: int = 200) -> QuerySet[Transaction]:
    return (
        Transaction.objects.filter(customer=customer)
        .select_related("product")
        .order_by("-invoiced_at", "-id")[:limit]
    )


def customer_campaigns(customer: Customer) -> QuerySet[CampaignHistory]:
    return CampaignHistory.objects.filter(customer=customer).order_by("-sent_at")


def recent_imports(limit: int = 50) -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]


# --- Audiences -----------------------------------------------------------------------------


def audience_list() -> QuerySet:
    from .models import Audience

    return Audience.objects.select_related("created_by").order_by("-created_at", "-id")


def audience_get(pk: int):
    from .models import Audience

    return Audience.objects.select_related("created_by").filter(pk=pk).first()


def audience_customers(audience) -> QuerySet[Customer]:
    """The audience's customers now: a filter is applied to today's customer table; a fixed list in rank order."""
    from .audiences import apply_filter

    if audience.kind == audience.Kind.FIXED:
        return Customer.objects.filter(audience_memberships__audience=audience).order_by(
            "audience_memberships__rank")
    return apply_filter(Customer.objects.all(), audience.filter).order_by("external_id")


def audience_customer_ids(audience) -> list[int]:
    """Customer pks of an audience (fixed lists in rank order)."""
    return list(audience_customers(audience).values_list("pk", flat=True))


def audience_member_rows(audience):
    """(external_id, country, rank, score) per member, for the CSV export."""
    if audience.kind == audience.Kind.FIXED:
        return audience.members.order_by("rank").values_list(
            "customer__external_id", "customer__country", "rank", "score").iterator(chunk_size=5000)
    rows = audience_customers(audience).values_list("external_id", "country").iterator(chunk_size=5000)
    return ((eid, country, rank, None) for rank, (eid, country) in enumerate(rows, start=1))


def customer_frame():
    """DataFrame indexed by customer pk with external_id and country, every customer (one scan)."""
    import pandas as pd

    rows = Customer.objects.values_list("pk", "external_id", "country").order_by().iterator(chunk_size=50_000)
    return pd.DataFrame.from_records(list(rows), columns=["customer_id", "external_id", "country"]
                                     ).set_index("customer_id")


def message_facts(customer_pks: list[int]) -> dict[int, dict]:
    """Per customer what a campaign message may say: favourite category and product (by purchase lines),
    days since the last order (to the latest transaction in the data). Aggregated in PostgreSQL."""
    facts: dict[int, dict] = {pk: {"favourite_category": "", "favourite_sku": "", "days_since_last_order": None}
                              for pk in customer_pks}
    if not customer_pks:
        return facts
    latest = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
    lines = Transaction.objects.filter(customer_id__in=customer_pks, is_return=False).order_by()
    for pk, last in lines.values("customer_id").annotate(last=Max("invoiced_at")).values_list("customer_id", "last"):
        facts[pk]["days_since_last_order"] = (latest - last).days if latest and last else None
    best_cat: dict[int, int] = {}
    for pk, cat, n in (lines.exclude(product__category="").values("customer_id", "product__category")
                       .annotate(n=Count("id")).values_list("customer_id", "product__category", "n")):
        if n > best_cat.get(pk, 0) or (n == best_cat.get(pk) and cat < facts[pk]["favourite_category"]):
            best_cat[pk] = n
            facts[pk]["favourite_category"] = cat
    best_sku: dict[int, int] = {}
    for pk, sku, n in (lines.filter(product__isnull=False).values("customer_id", "product__sku")
                       .annotate(n=Count("id")).values_list("customer_id", "product__sku", "n")):
        if n > best_sku.get(pk, 0) or (n == best_sku.get(pk) and sku < facts[pk]["favourite_sku"]):
            best_sku[pk] = n
            facts[pk]["favourite_sku"] = sku
    return facts


def recently_contacted(customer_pks_since: datetime) -> set[int]:
    """Customers treated in an imported campaign (CampaignHistory) sent on or after the given time."""
    return set(CampaignHistory.objects.filter(treated=True, sent_at__gte=customer_pks_since)
               .values_list("customer_id", flat=True))


def campaign_outcomes(campaign: str) -> dict[int, tuple[bool, float]]:
    """customer pk → (converted, revenue) of an imported campaign's history rows (by campaign name)."""
    return {pk: (conv, float(rev)) for pk, conv, rev in
            CampaignHistory.objects.filter(campaign=campaign).values_list("customer_id", "converted", "revenue")}
