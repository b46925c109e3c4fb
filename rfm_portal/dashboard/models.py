"""Page summaries: aggregates and figures computed once per import, training or erasure and stored.

See ``rfm_portal.dashboard.summaries`` for how they are keyed, refreshed and invalidated.
"""

from __future__ import annotations

from django.db import models


class DataGeneration(models.Model):
    """A counter per kind of data change ("import", "stream", "erasure"), bumped after the change commits.

    A summary stores the counters it was computed under; a page serves it only while they still match.
    """

    name = models.CharField(max_length=32, primary_key=True)
    value = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class PageSummary(models.Model):
    """One page's stored aggregates (JSON): what it was computed from (``key``), when and how long it took."""

    name = models.CharField(max_length=64, unique=True)
    key = models.JSONField(default=dict, help_text="counters, model versions and row ids it was computed from")
    payload = models.JSONField()
    computed_at = models.DateTimeField()
    seconds = models.FloatField(default=0.0, help_text="time it took to compute")

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "page summaries"

    def __str__(self) -> str:
        return f"{self.name} @ {self.computed_at:%Y-%m-%d %H:%M:%S}"


class CustomerTotals(models.Model):
    """Each customer's totals over their transactions, stored so the customer table can sort and page by them
    without aggregating every customer's transactions per view (rebuilt by ``summaries`` when data change)."""

    customer = models.OneToOneField("customers.Customer", on_delete=models.CASCADE, related_name="stored_totals")
    orders = models.IntegerField(help_text="distinct purchase invoices")
    revenue = models.DecimalField(max_digits=20, decimal_places=4, null=True,
                                  help_text="all amounts, returns negative; NULL without transactions")
    last_purchase = models.DateTimeField(null=True)

    class Meta:
        # The customer table's sorts by these walk them for a page's rows (``customers.table.valued_first``: the
        # customers with a value sorted plainly, which a descending index reads in either direction).
        indexes = [models.Index(fields=["-revenue"], name="customer_totals_revenue_desc"),
                   models.Index(fields=["-orders"], name="customer_totals_orders_desc"),
                   models.Index(fields=["-last_purchase"], name="customer_totals_last_desc")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.orders} orders, {self.revenue}"
