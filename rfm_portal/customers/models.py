"""The company's data: customers, products, transactions, past campaigns, imports."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower


class Customer(models.Model):
    external_id = models.CharField(max_length=64, unique=True, help_text="The company's own customer id.")
    country = models.CharField(max_length=64, blank=True)
    first_seen = models.DateTimeField(null=True, blank=True, help_text="Time of the first transaction.")
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["external_id"]
        indexes = [models.Index(fields=["country"])]

    def __str__(self) -> str:
        return self.external_id


class Product(models.Model):
    sku = models.CharField(max_length=64, unique=True)
    description = models.CharField(max_length=255, blank=True)
    category = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["sku"]

    def __str__(self) -> str:
        return f"{self.sku} {self.description}".strip()


class Transaction(models.Model):
    """One invoice line. Cancellations and returns are kept, flagged and negative."""

    invoice = models.CharField(max_length=32)
    # No single-column index: the (customer, invoiced_at) index below serves customer lookups.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="transactions", db_index=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    invoiced_at = models.DateTimeField()
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=4)
    amount = models.DecimalField(
        max_digits=14, decimal_places=4, help_text="quantity × unit price; negative for returns"
    )
    is_return = models.BooleanField(default=False)
    # Content hash of the source line (plus its occurrence number among identical lines):
    # importing the same file twice, or overlapping files, adds nothing.
    # A UniqueConstraint rather than unique=True: PostgreSQL then skips the LIKE-pattern index
    # Django adds for unique text columns, which a hash never needs.
    row_hash = models.CharField(max_length=40)
    import_job = models.ForeignKey("ImportJob", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["invoiced_at", "id"]
        indexes = [
            models.Index(fields=["customer", "invoiced_at"]),
            models.Index(fields=["invoiced_at"]),
        ]
        constraints = [models.UniqueConstraint(fields=["row_hash"], name="transaction_row_hash_unique")]

    def __str__(self) -> str:
        return f"{self.invoice} {self.customer_id} {self.amount}"


class CampaignHistory(models.Model):
    """Outcome of a past (ideally randomised) campaign, for uplift training."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="campaign_history")
    campaign = models.CharField(max_length=64)
    treated = models.BooleanField()
    converted = models.BooleanField()
    revenue = models.DecimalField(max_digits=14, decimal_places=4, default=0)
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["campaign", "customer_id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "campaign"], name="one_record_per_customer_campaign")
        ]

    def __str__(self) -> str:
        return f"{self.campaign} {self.customer_id} treated={self.treated}"


class ImportJob(models.Model):
    class Kind(models.TextChoices):
        TRANSACTIONS = "transactions", "Transactions"
        CAMPAIGNS = "campaigns", "Campaign history"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        REJECTED = "rejected", "Rejected (invalid rows, nothing imported)"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TRANSACTIONS)
    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, blank=True)
    column_mapping = models.JSONField(default=dict, blank=True)
    skip_invalid = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    rows_total = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0, help_text="valid rows")
    rows_inserted = models.PositiveIntegerField(default=0, help_text="valid rows that were new")
    rows_duplicate = models.PositiveIntegerField(default=0, help_text="valid rows already present")
    rows_rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True, help_text="[{line, reason}], first IMPORT_ERROR_REPORT_LIMIT")
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Import {self.pk} {self.file_name} ({self.status})"


class Audience(models.Model):
    """A named, saved selection of customers: a filter over the customer table or a fixed list.

    The lookalike builder, the customer table and the campaign planner create and use them;
    ``customers.selectors.audience_customer_ids`` resolves either kind to customer ids.
    """

    class Kind(models.TextChoices):
        FILTER = "filter", "Filter"
        FIXED = "fixed", "Fixed list"

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    filter = models.JSONField(default=dict, blank=True, help_text="filter audiences: {key: value}, see audiences.py")
    source = models.CharField(max_length=255, blank=True, help_text='e.g. "lookalike of segment Champions"')
    size = models.PositiveIntegerField(default=0, help_text="members when saved (filter audiences: when last resolved)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(Lower("name"), name="audience_name_unique_ci")]

    def __str__(self) -> str:
        return self.name


class AudienceMember(models.Model):
    """A customer in a fixed-list audience, with its rank and score in the list that made it (e.g. similarity)."""

    audience = models.ForeignKey(Audience, on_delete=models.CASCADE, related_name="members", db_index=False)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="audience_memberships")
    rank = models.PositiveIntegerField()
    score = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["audience", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["audience", "customer"], name="one_membership_per_audience_customer")
        ]
        indexes = [models.Index(fields=["audience", "rank"], name="audience_member_rank")]

    def __str__(self) -> str:
        return f"{self.audience_id}:{self.customer_id}"
