"""Training through the service with one stray 2011 transaction among 2023-24 data (issue 9)."""

from __future__ import annotations

from datetime import date

import pytest

from cltv import services
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.models import ImportJob
from rfm_portal.mlops.models import ModelVersion


@pytest.mark.django_db
def test_a_stray_2011_transaction_does_not_break_training(tmp_path) -> None:
    data = generator.generate(150, 5, start=date(2023, 1, 1), end=date(2024, 6, 30))
    paths = generator.write_outputs(data, tmp_path)
    with open(paths["transactions"], "a", encoding="utf-8") as fh:
        header = open(paths["transactions"], encoding="utf-8").readline().strip().split(",")
        row = {"invoice": "OLD-1", "customer_id": "STRAY-2011", "sku": "OLD", "description": "old stock",
               "category": "misc", "invoiced_at": "2011-03-04 10:00:00", "quantity": "1", "unit_price": "12.50",
               "country": "United Kingdom"}  # fmt: skip
        fh.write(",".join(row.get(col, "") for col in header) + "\n")
    job = customer_services.import_transactions(paths["transactions"])
    assert job.status == ImportJob.Status.SUCCEEDED, job.message

    mv = services.train_cltv_model(unit="W", n_draws=20)

    assert mv.status == ModelVersion.Status.ACTIVE
    assert "2023-10-01" < mv.params["calibration_end"] < "2024-07-01"
    assert mv.metrics["gamma_gamma"]["n_customers"] >= 3
