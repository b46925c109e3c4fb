"""Every CSV export neutralises spreadsheet formulas that came in through the import (customer ids, countries).

The hostile values were imported through the ordinary import path (conftest); each export is downloaded as a
portal user would and parsed as a spreadsheet would read it.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.urls import reverse

from rfm_portal.core.csv_export import FORMULA_PREFIXES, safe_cell
from rfm_portal.customers.models import Customer, Product
from rfm_portal.mlops import services as registry

from .conftest import HOSTILE_DESCRIPTION

EXPORTS = ["segmentation:members-csv", "cltv:scores-csv", "churn:at-risk-csv"]


@pytest.fixture
def exports_ready(trained_models, settings):
    settings.ARTIFACT_ROOT = trained_models.artifacts
    registry.clear_model_cache()
    return trained_models


def download(client, url_name: str) -> list[list[str]]:
    response = client.get(reverse(url_name))
    assert response.status_code == 200, (url_name, response.status_code)
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def test_hostile_values_were_imported_raw(exports_ready, db):
    """The import keeps the values as given (they are data); only exports neutralise them."""
    stored = dict(Customer.objects.filter(external_id__in=exports_ready.hostile).values_list("external_id", "country"))
    assert stored == exports_ready.hostile
    assert Product.objects.filter(description=HOSTILE_DESCRIPTION).exists()


@pytest.mark.parametrize("url_name", EXPORTS)
def test_export_neutralises_every_formula(url_name, exports_ready, analyst_client):
    rows = download(analyst_client, url_name)
    header, body = rows[0], rows[1:]
    assert body, f"{url_name} exported no rows"
    for row in body:
        for cell in row:
            assert safe_cell(cell) == cell, f"{url_name}: {cell!r} would run as a formula"
    exported = {row[header.index("customer_id")]: row for row in body}
    hostile_seen = 0
    for hostile_id, country in exports_ready.hostile.items():
        row = exported.get("'" + hostile_id)
        if row is None:
            assert hostile_id not in exported, f"{url_name}: {hostile_id!r} exported raw"
            continue
        hostile_seen += 1
        if "country" in header:
            assert row[header.index("country")] == "'" + country
    assert hostile_seen >= 10, f"{url_name}: only {hostile_seen} hostile customers exported"


@pytest.mark.parametrize("url_name", EXPORTS)
def test_export_numbers_stay_numbers(url_name, exports_ready, analyst_client):
    """Numeric columns are never prefixed: a negative amount must still be a number in the spreadsheet."""
    rows = download(analyst_client, url_name)
    header, body = rows[0], rows[1:]
    numeric = [i for i, name in enumerate(header) if all(_is_number(r[i]) for r in body if r[i] != "")
               and any(r[i] != "" for r in body)]
    assert numeric, f"{url_name}: no numeric column found"
    for row in body:
        for i, cell in enumerate(row):
            if i not in numeric:
                continue
            assert not cell.startswith("'")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+2", "'=1+2"),
        ("@SUM(1+1)", "'@SUM(1+1)"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+CONCAT(1)", "'+CONCAT(1)"),
        ("-2+3", "'-2+3"),
        ("\t=1+2", "'\t=1+2"),
        ("\r=1+2", "'\r=1+2"),
        ("-12.50", "-12.50"),  # a formatted negative amount: a number, left alone
        ("+3", "+3"),
        ("1e-5", "1e-5"),
        (-12.5, -12.5),
        (0, 0),
        ("United Kingdom", "United Kingdom"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_safe_cell_rule(value, written):
    assert safe_cell(value) == written
    if isinstance(written, str) and written.startswith("'"):
        assert value.startswith(FORMULA_PREFIXES)
