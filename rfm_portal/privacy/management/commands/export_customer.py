"""Everything held about one customer as JSON (right of access): ``manage.py export_customer CUSTOMER_ID``."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from rfm_portal.customers.models import Customer
from rfm_portal.privacy import services


class Command(BaseCommand):
    help = "Print (or write with --output) a customer's data as JSON; the customer id or pk:<database id>."

    def add_arguments(self, parser) -> None:
        parser.add_argument("customer_id")
        parser.add_argument("--output", "-o", help="write to this file instead of standard output")

    def handle(self, *args, customer_id: str, output: str | None, **options) -> None:
        try:
            customer = services.customer_by_reference(customer_id)
        except (Customer.DoesNotExist, ValueError) as exc:
            raise CommandError(f"no customer {customer_id!r}") from exc
        data = services.export_customer(customer=customer, actor=None)
        if output:
            Path(output).write_text(data, encoding="utf-8")
            self.stdout.write(self.style.SUCCESS(f"written to {output}"))
        else:
            self.stdout.write(data)
