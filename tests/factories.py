"""Small, known data sets built directly in the database for page and selector tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal

from rfm_portal.customers.models import Customer, Product, Transaction


def make_transaction(
    customer: Customer,
    invoice: str,
    when: str,
    quantity: int,
    unit_price: str,
    product: Product | None = None,
) -> Transaction:
    invoiced_at = datetime.fromisoformat(when).replace(tzinfo=UTC)
    price = Decimal(unit_price)
    row_hash = hashlib.sha1(f"{invoice}|{customer.external_id}|{when}|{quantity}|{unit_price}".encode()).hexdigest()
    return Transaction.objects.create(
        invoice=invoice,
        customer=customer,
        product=product,
        invoiced_at=invoiced_at,
        quantity=quantity,
        unit_price=price,
        amount=price * quantity,
        is_return=quantity < 0 or invoice.startswith("C"),
        row_hash=row_hash,
    )


def known_dataset() -> dict[str, Customer]:
    """Three customers. Totals (worked by hand):

    A (UK): 3 orders 100 + 50 + 30 = 180 gross, one return -20 -> net 160; last buy 2024-03-20
    B (FR): 1 order of 40; last buy 2023-11-01
    C (UK): 2 orders 10 + 10 = 20; last buy 2024-01-15
    All: net revenue 220, 6 purchase invoices, gross 240 -> AOV 40; repeaters A and C -> 2/3.
    Last transaction 2024-03-20 -> active (90 days: after 2023-12-21) = A and C.
    """
    mug = Product.objects.create(sku="MUG", description="Mug", category="kitchen")
    a = Customer.objects.create(external_id="A", country="United Kingdom")
    b = Customer.objects.create(external_id="B", country="France")
    c = Customer.objects.create(external_id="C", country="United Kingdom")
    make_transaction(a, "1001", "2023-10-01T10:00", 10, "10.00", mug)
    make_transaction(a, "1002", "2024-01-10T10:00", 5, "10.00", mug)
    make_transaction(a, "1003", "2024-03-20T10:00", 3, "10.00", mug)
    make_transaction(a, "C1004", "2024-03-01T10:00", -2, "10.00", mug)
    make_transaction(b, "2001", "2023-11-01T12:00", 4, "10.00", mug)
    make_transaction(c, "3001", "2023-12-01T09:00", 1, "10.00", mug)
    make_transaction(c, "3002", "2024-01-15T09:00", 2, "5.00", mug)
    return {"A": a, "B": b, "C": c}
