"""Erase one customer everywhere (right to erasure): ``manage.py erase_customer CUSTOMER_ID``."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from rfm_portal.customers.models import Customer
from rfm_portal.privacy import services


class Command(BaseCommand):
    help = "Erase a customer (by the company's customer id, or pk:<database id>) from every table and store."

    def add_arguments(self, parser) -> None:
        parser.add_argument("customer_id")
        parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    def handle(self, *args, customer_id: str, yes: bool, **options) -> None:
        try:
            customer = services.customer_by_reference(customer_id)
        except (Customer.DoesNotExist, ValueError) as exc:
            raise CommandError(f"no customer {customer_id!r}") from exc
        if not yes and options.get("interactive", True):
            answer = input(f"Erase customer {customer.external_id} everywhere? This cannot be undone. [y/N] ")
            if answer.strip().lower() not in {"y", "yes"}:
                raise CommandError("not erased")
        result = services.erase_customer(customer=customer, actor=None)
        for label, n in sorted(result.rows_deleted.items()):
            self.stdout.write(f"{label}: {n}")
        for name, n in sorted(result.stores.items()):
            self.stdout.write(f"{name}: {n} artifact(s) rewritten")
        self.stdout.write(self.style.SUCCESS(f"erased: {result.total_rows} rows"))
