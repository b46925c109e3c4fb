"""POST /api/events: API key, one event or a batch ≤ 1,000, field errors, all-or-nothing batches, 202 with ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from streaming.events import decode

from .conftest import event

URL = "/api/events"


def post(client, body) -> object:
    return client.post(URL, data=json.dumps(body) if not isinstance(body, str) else body,
                       content_type="application/json")


def entries(stream) -> list:
    return stream.redis.xrange(stream.key)


def test_one_event_is_accepted_with_its_id_and_appended(api_client, stream):
    response = post(api_client, event("crm-1", "10001"))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1 and body["event_ids"] == ["crm-1"]
    ((entry_id, fields),) = entries(stream)
    assert body["stream_ids"] == [entry_id] and decode(fields["event"]).event_id == "crm-1"


def test_a_batch_is_accepted_whole(api_client, stream):
    batch = [event(f"crm-{i}", "10001") for i in range(50)]
    for body in (batch, {"events": batch[:10]}):
        response = post(api_client, body)
        assert response.status_code == 202, response.json()
    assert len(entries(stream)) == 60


def test_a_batch_with_one_bad_event_gets_its_field_errors_and_nothing_is_appended(api_client, stream):
    """The rule: all or nothing. One bad event rejects the whole batch, with the errors of that event only."""
    batch = [event(f"crm-{i}", "10001") for i in range(5)]
    batch[3]["lines"][0]["quantity"] = -2
    batch[3]["mood"] = "happy"
    response = post(api_client, {"events": batch})
    assert response.status_code == 400
    errors = response.json()["events"]
    assert set(errors) == {"3"}
    assert errors["3"]["mood"] == ["Unknown field."]
    assert "quantity" in errors["3"]["lines"]["0"]
    assert entries(stream) == []


@pytest.mark.parametrize(("patch", "field"), [
    ({"occurred_at": "1899-12-31T00:00:00Z"}, "occurred_at"),
    ({"occurred_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}, "occurred_at"),
    ({"occurred_at": "yesterday"}, "occurred_at"),
    ({"type": "refund"}, "type"),
    ({"event_id": ""}, "event_id"),
    ({"event_id": "has space"}, "event_id"),
    ({"customer_id": "x" * 65}, "customer_id"),
    ({"lines": []}, "lines"),
    ({"surprise": 1}, "surprise"),
    ({"invoice": "C123"}, "invoice"),
], ids=["too-old", "future", "not-a-date", "type", "blank-id", "bad-id", "long-customer", "no-lines",
        "unknown-key", "purchase-with-return-invoice"])
def test_invalid_fields_get_field_errors(api_client, stream, patch, field):
    response = post(api_client, {**event("crm-x", "10001"), **patch})
    assert response.status_code == 400 and field in response.json(), response.json()
    assert entries(stream) == []


@pytest.mark.parametrize(("line_patch", "field"), [
    ({"quantity": 1.5}, "quantity"),
    ({"quantity": "NaN"}, "quantity"),
    ({"quantity": 10**12}, "quantity"),
    ({"quantity": True}, "quantity"),
    ({"unit_price": "Infinity"}, "unit_price"),
    ({"unit_price": "NaN"}, "unit_price"),
    ({"unit_price": "1e30"}, "unit_price"),
    ({"unit_price": "1.00001"}, "unit_price"),
    ({"unit_price": -1}, "unit_price"),
    ({"colour": "red"}, "colour"),
], ids=["fraction", "nan-quantity", "huge-quantity", "bool", "inf-price", "nan-price", "huge-price", "decimals",
        "negative", "unknown-line-key"])
def test_bad_numbers_and_unknown_line_keys_get_line_field_errors(api_client, stream, line_patch, field):
    body = event("crm-x", "10001")
    body["lines"][0].update(line_patch)
    response = post(api_client, body)
    assert response.status_code == 400
    assert field in response.json()["lines"]["0"], response.json()


def test_non_finite_json_numbers_are_rejected(api_client, stream):
    raw = json.dumps(event("crm-x", "10001")).replace('"6.49"', "NaN")
    assert post(api_client, raw).status_code == 400
    raw = json.dumps(event("crm-x", "10001")).replace('"6.49"', "1e400")  # parses to inf
    response = post(api_client, raw)
    assert response.status_code == 400 and "unit_price" in response.json()["lines"]["0"]
    assert entries(stream) == []


def test_an_event_whose_total_overflows_the_amount_column_is_rejected(api_client, stream):
    # each line is within its limits, the event's total (10**10) is not: numeric(14, 4) holds less
    body = event("crm-x", "10001", quantity=10_000, price="1000000")
    response = post(api_client, body)
    assert response.status_code == 400 and "total" in response.json()["lines"][0], response.json()
    body["lines"][0]["unit_price"] = "999999.9999"  # just below: accepted
    assert post(api_client, body).status_code == 202
    assert len(entries(stream)) == 1


def test_batch_limits_and_repeated_ids(api_client, stream):
    too_many = [event(f"e-{i}", "10001") for i in range(1001)]
    assert post(api_client, too_many).status_code == 400
    assert post(api_client, []).status_code == 400
    twice = post(api_client, [event("same", "10001"), event("same", "10002")])
    assert twice.status_code == 400 and "event_id" in twice.json()["events"]["1"]
    assert post(api_client, {"events": [], "extra": 1}).status_code == 400
    assert post(api_client, "42").status_code == 400
    assert entries(stream) == []


def test_an_api_key_or_a_session_is_required(outsider_client, analyst_client, stream):
    assert post(outsider_client, event("crm-1", "10001")).status_code in (401, 403)
    assert entries(stream) == []
    assert post(analyst_client, event("crm-1", "10001")).status_code == 202  # a portal session, like the other APIs
    assert len(entries(stream)) == 1
