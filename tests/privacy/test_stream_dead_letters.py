"""Dead-lettered live events name the customer: erasure deletes them from Redis once it commits; export lists them."""

from __future__ import annotations

import json
import uuid

import pytest

from rfm_portal.privacy import services
from streaming.backends import get_stream
from streaming.privacy import dead_letters_of

from .conftest import SECRET_ID


@pytest.fixture
def dead_stream(settings):
    tag = uuid.uuid4().hex[:10]
    settings.STREAM = {**settings.STREAM, "KEY": f"test:{tag}:events", "DEAD_LETTER_KEY": f"test:{tag}:dead"}
    stream = get_stream()
    assert type(stream).__name__ == "RedisStream", "tests run with REDIS_URL set"
    for customer in (SECRET_ID, "KEEP-0"):
        stream.redis.xadd(stream.dead_key, {"entry_id": "1-0", "reason": "bad amount", "consumer": "c1",
                                            "event": json.dumps({"event_id": uuid.uuid4().hex, "customer_id": customer,
                                                                 "amount": "x"})})
    stream.redis.xadd(stream.dead_key, {"entry_id": "2-0", "reason": "not JSON", "consumer": "c1",
                                        "event": '{"customer_id": "' + SECRET_ID + '", broken'})
    yield stream
    stream.redis.delete(stream.dead_key)


def test_erasure_deletes_the_customers_dead_letters_after_commit(people, admin, dead_stream,
                                                                 django_capture_on_commit_callbacks):
    assert len(dead_letters_of(SECRET_ID)) == 2
    exported = json.loads(services.export_customer(customer=people["target"], actor=admin))
    assert len(exported["stores"]["stream-dead-letters"]) == 2
    with django_capture_on_commit_callbacks(execute=True):
        result = services.erase_customer(customer=people["target"], actor=admin)
    assert result.stores["stream-dead-letters"] == 2
    assert dead_letters_of(SECRET_ID) == []
    assert len(dead_letters_of("KEEP-0")) == 1  # nobody else's
    assert dead_stream.redis.xlen(dead_stream.dead_key) == 1
