"""The scoring fast path (rfm_portal.serving.fastpath) answers exactly what Django answers, or lets Django answer.

Each request is sent over ASGI twice: to the fast path in front of Django, and to Django alone. Status,
headers (names, values, order) and body bytes must be the same. For payloads the fast path takes, it must
answer without calling Django; for everything else (ids, explain, invalid input, missing/revoked/unknown
keys, sessions, other media types, stale caches) it must hand the request, body included, to Django.

The data, models, keys and the session user are created once for the module and committed, and the tests'
writes are committed from a thread of their own (`committed`): Django's path runs in its own request thread,
with its own database connection, and would not see the test's transaction.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connections
from django.test import Client

from churn import services as churn_services
from churn.services import train_churn_model
from cltv.services import train_cltv_model
from rfm_portal.accounts import services as account_services
from rfm_portal.accounts.authentication import forget_api_key
from rfm_portal.accounts.models import APIKey, User
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.features import features_to_payload
from rfm_portal.customers.models import Customer
from rfm_portal.mlops import services as registry
from rfm_portal.serving.asgi import SyncChainASGIHandler
from rfm_portal.serving.fastpath import ScoringFastPath
from tests.cltv_app.conftest import wipe

pytestmark = pytest.mark.django_db

START, END = date(2023, 1, 1), date(2024, 6, 30)


@dataclass
class World:
    raw_key: str
    key_pk: int
    session_cookie: str
    customer_id: str
    churn_row: dict


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[World]:
    from django.test.utils import override_settings

    data = generator.generate(400, 21, start=START, end=END)
    paths = generator.write_outputs(data, tmp_path_factory.mktemp("fastpath_gen"))
    artifacts = tmp_path_factory.mktemp("fastpath_artifacts")
    with django_db_blocker.unblock(), override_settings(ARTIFACT_ROOT=artifacts):
        wipe()
        job = customer_services.import_transactions(paths["transactions"])
        assert job.status == "succeeded", job.message
        train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=50)
        champion, _ = train_churn_model()
        pks = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[:20])
        X = churn_services.features_for_customers(pks, champion.data_cutoff)
        churn_row = features_to_payload(X.drop(columns=["country"], errors="ignore").iloc[:1])[0]
        del churn_row["customer_id"]
        created = account_services.api_key_create(name="fast-path test")
        user = User.objects.create_user("fastpath-analyst", "fp@example.com", "x" * 12, role=User.Role.ANALYST)
        client = Client()
        client.force_login(user)
        try:
            yield World(raw_key=created.raw_key, key_pk=created.api_key.pk,
                        session_cookie=client.cookies["sessionid"].value,
                        customer_id=Customer.objects.order_by("pk").values_list("external_id", flat=True)[0],
                        churn_row=churn_row)
        finally:
            User.objects.filter(username="fastpath-analyst").delete()
            APIKey.objects.all().delete()
            wipe()


@pytest.fixture(autouse=True)
def _caches(settings) -> Iterator[None]:
    settings.API_KEY_CACHE_SECONDS = 30
    settings.ACTIVE_MODEL_RECHECK_SECONDS = 30
    registry.clear_model_cache()
    forget_api_key()
    yield
    registry.clear_model_cache()
    forget_api_key()


def committed(write: Callable[[], object]) -> None:
    """Run a write outside the test's transaction (own thread, own connection, autocommit), so that Django's
    request threads see it."""

    def run() -> None:
        try:
            write()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


class CountingDjango:
    """Django's ASGI handler, counting the requests it is given."""

    def __init__(self) -> None:
        self.app = SyncChainASGIHandler()
        self.calls = 0

    async def __call__(self, scope, receive, send) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self):
        return json.loads(self.body)


def send(app, path: str, body: bytes | dict, headers: list[tuple[bytes, bytes]], *, method: str = "POST",
         query: bytes = b"", scheme: str = "http", chunks: int = 1) -> Answer:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    length = [(b"content-length", str(len(raw)).encode())] if raw else []

    async def run() -> Answer:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": scheme, "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
                 "headers": [(b"host", b"testserver"), *length, *headers], "client": ("127.0.0.1", 5000),
                 "server": ("testserver", 80)}
        communicator = ApplicationCommunicator(app, scope)
        size = -(-len(raw) // chunks) if raw else 0
        parts = [raw[i:i + size] for i in range(0, len(raw), size)] if raw else [b""]
        for i, part in enumerate(parts):
            await communicator.send_input({"type": "http.request", "body": part, "more_body": i < len(parts) - 1})
        start = await communicator.receive_output(30)
        content = b""
        while True:
            message = await communicator.receive_output(30)
            content += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await communicator.wait(30)
        return Answer(start["status"], list(start["headers"]), content)

    return asyncio.run(run())


def key_headers(world: World, content_type: bytes = b"application/json") -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type), (b"authorization", f"Api-Key {world.raw_key}".encode())]


def both(path: str, body, headers, **kwargs) -> tuple[Answer, Answer, CountingDjango, ScoringFastPath]:
    """(fast path's answer, Django's answer, the Django behind the fast path, the fast path)."""
    django_behind = CountingDjango()
    fast = ScoringFastPath(django_behind)
    fast_answer = send(fast, path, body, headers, **kwargs)
    django_answer = send(SyncChainASGIHandler(), path, body, headers, **kwargs)
    return fast_answer, django_answer, django_behind, fast


def warm(world: World) -> None:
    """One call of each endpoint through Django: the key (and its last use) and both models cached."""
    app = SyncChainASGIHandler()
    assert send(app, "/predict_churn", {"features": world.churn_row}, key_headers(world)).status == 200
    assert send(app, "/predict_cltv", {"customers": [{"frequency": 1, "recency": 2, "T": 3, "monetary_value": 4}],
                                        "unit": "weeks"}, key_headers(world)).status == 200


FAST_CHURN = [
    lambda w: {"features": w.churn_row},
    lambda w: {"features": [w.churn_row]},
    lambda w: {"features": [{**w.churn_row, "customer_id": f"c-{i}", "frequency": 1 + i,
                             "recency_days": 3.5 * i, "country": "FR" if i % 2 else None} for i in range(5)]},
    lambda w: {"features": {**w.churn_row, "customer_id": "Zoë 東京", "p_alive": 0.25}, "explain": False, "top_k": 3},
    lambda w: {"top_k": 20, "features": [{**w.churn_row, "recency_days": 0.0, "return_count": 0}]},
]
FAST_CLTV = [
    {"customers": [{"frequency": 3, "recency": 20.5, "T": 40.0, "monetary_value": 35.2}], "unit": "weeks"},
    {"frequency": 0, "recency": 0, "T": 10, "monetary_value": 0, "unit": "days"},
    {"unit": "days", "customers": [{"frequency": f, "recency": 7.0 * f, "T": 400, "monetary_value": 20 + f}
                                   for f in range(0, 40, 3)]},
]


@pytest.mark.parametrize("make_body", FAST_CHURN)
def test_churn_payloads_are_answered_fast_and_identically(world, make_body) -> None:
    warm(world)
    fast, django, behind, app = both("/predict_churn", make_body(world), key_headers(world))
    assert (behind.calls, app.answered) == (0, 1)
    assert fast.status == 200 and fast.json()["count"] >= 1
    assert fast == django
    names = [name for name, _ in fast.headers]
    assert {b"X-Content-Type-Options", b"X-Frame-Options", b"Referrer-Policy", b"Content-Length"} <= set(names)


@pytest.mark.parametrize("body", FAST_CLTV)
def test_cltv_payloads_are_answered_fast_and_identically(world, body) -> None:
    warm(world)
    fast, django, behind, app = both("/predict_cltv", body, key_headers(world))
    assert (behind.calls, app.answered) == (0, 1)
    assert fast.status == 200 and fast.json()["results"][0]["source"] == "payload"
    assert fast == django


def test_charset_and_a_body_in_several_messages(world) -> None:
    warm(world)
    headers = [*key_headers(world, b"application/json; charset=utf-8"), (b"accept", b"application/json")]
    fast, django, behind, _ = both("/predict_churn", {"features": world.churn_row}, headers, chunks=3)
    assert behind.calls == 0 and fast == django


def test_https_behind_a_proxy_gets_the_same_hsts(world, settings) -> None:
    settings.SECURE_HSTS_SECONDS = 3600
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    warm_headers = [*key_headers(world), (b"x-forwarded-proto", b"https")]
    app = SyncChainASGIHandler()
    assert send(app, "/predict_churn", {"features": world.churn_row}, warm_headers).status == 200
    assert send(app, "/predict_cltv", FAST_CLTV[0], warm_headers).status == 200
    fast, django, behind, _ = both("/predict_churn", {"features": world.churn_row}, warm_headers)
    assert behind.calls == 0 and fast == django
    assert (b"Strict-Transport-Security", b"max-age=3600") in fast.headers
    # plain http is redirected by SecurityMiddleware: Django's answer
    fast, django, behind, _ = both("/predict_churn", {"features": world.churn_row}, key_headers(world))
    assert behind.calls == 1 and fast.status == 301 and fast == django


def fallthrough_cases(world: World) -> list[tuple[str, str, object, list[tuple[bytes, bytes]], dict]]:
    keyed = key_headers(world)
    row = world.churn_row
    cltv_row = {"frequency": 3, "recency": 20.5, "T": 40.0, "monetary_value": 35.2}
    return [
        ("churn by id", "/predict_churn", {"customer_id": world.customer_id}, keyed, {}),
        ("churn by ids", "/predict_churn", {"customer_ids": [world.customer_id, "nobody"]}, keyed, {}),
        ("churn unknown id", "/predict_churn", {"customer_id": "nobody"}, keyed, {}),
        ("churn explain", "/predict_churn", {"features": row, "explain": True}, keyed, {}),
        ("churn top_k as float", "/predict_churn", {"features": row, "top_k": 5.0}, keyed, {}),
        ("churn top_k too big", "/predict_churn", {"features": row, "top_k": 21}, keyed, {}),
        ("churn missing field", "/predict_churn", {"features": {k: v for k, v in row.items() if k != "frequency"}},
         keyed, {}),
        ("churn string number", "/predict_churn", {"features": {**row, "monetary": "310"}}, keyed, {}),
        ("churn huge count", "/predict_churn", {"features": {**row, "frequency": 1e19}}, keyed, {}),
        ("churn unknown key", "/predict_churn", {"features": row, "extra": 1}, keyed, {}),
        ("churn as_of with features", "/predict_churn", {"features": row, "as_of": "2024-01-01T00:00:00Z"},
         keyed, {}),
        ("churn features null", "/predict_churn", {"features": None}, keyed, {}),
        ("churn empty list", "/predict_churn", {"features": []}, keyed, {}),
        ("churn duplicate ids", "/predict_churn", {"features": [{**row, "customer_id": "a"},
                                                                {**row, "customer_id": "a"}]}, keyed, {}),
        ("not an object", "/predict_churn", [row], keyed, {}),
        ("bad JSON", "/predict_churn", b'{"features": ', keyed, {}),
        ("NaN literal", "/predict_churn", b'{"features": {"frequency": NaN}}', keyed, {}),
        ("deep nesting", "/predict_churn", b"[" * 40 + b"]" * 40, keyed, {}),
        ("form body", "/predict_churn", b"features=1", key_headers(world, b"application/x-www-form-urlencoded"), {}),
        ("no key", "/predict_churn", {"features": row}, [(b"content-type", b"application/json")], {}),
        ("unknown key", "/predict_churn", {"features": row},
         [(b"content-type", b"application/json"), (b"authorization", b"Api-Key nope.nope")], {}),
        ("malformed key header", "/predict_churn", {"features": row},
         [(b"content-type", b"application/json"), (b"authorization", b"Api-Key a b")], {}),
        ("session", "/predict_churn", {"features": row},
         [(b"content-type", b"application/json"), (b"cookie", f"sessionid={world.session_cookie}".encode())], {}),
        ("html wanted", "/predict_churn", {"features": row}, [*keyed, (b"accept", b"text/html")], {}),
        ("format query", "/predict_churn", {"features": row}, keyed, {"query": b"format=json"}),
        ("bad host", "/predict_churn", {"features": row}, [*keyed, (b"host", b"evil.example")], {}),
        ("GET", "/predict_churn", b"", keyed, {"method": "GET"}),
        ("cltv by id", "/predict_cltv", {"customer_id": world.customer_id}, keyed, {}),
        ("cltv with settings", "/predict_cltv", {"customers": [cltv_row], "unit": "weeks", "margin": 0.3}, keyed, {}),
        ("cltv no unit", "/predict_cltv", {"customers": [cltv_row]}, keyed, {}),
        ("cltv bad unit", "/predict_cltv", {"customers": [cltv_row], "unit": "months"}, keyed, {}),
        ("cltv recency > T", "/predict_cltv", {"customers": [{**cltv_row, "recency": 50}], "unit": "weeks"},
         keyed, {}),
        ("cltv boolean", "/predict_cltv", {"customers": [{**cltv_row, "frequency": True}], "unit": "weeks"},
         keyed, {}),
        ("cltv 1e308", "/predict_cltv", {"customers": [{**cltv_row, "monetary_value": 1e308}], "unit": "weeks"},
         keyed, {}),
        ("other path", "/api/models/", b"", keyed, {"method": "GET"}),
    ]


def test_everything_else_is_answered_by_django_exactly(world) -> None:
    warm(world)
    cases = fallthrough_cases(world)
    statuses = {}
    for label, path, body, headers, kwargs in cases:
        fast, django, behind, app = both(path, body, headers, **kwargs)
        assert behind.calls == 1 and app.answered == 0, label
        if label == "html wanted":  # the browsable API's page carries a fresh CSRF token each time
            assert fast.status == django.status and fast.headers[0] == django.headers[0] == (
                b"Content-Type", b"text/html; charset=utf-8")
        else:
            assert fast == django, label
        statuses[label] = fast.status
    assert statuses["churn by id"] == 200 and statuses["cltv by id"] == 200 and statuses["churn explain"] == 200
    assert statuses["no key"] in (401, 403) and statuses["unknown key"] in (401, 403)
    assert statuses["session"] == 403  # a session POST needs its CSRF token: DRF's own answer
    assert statuses["bad host"] == 400 and statuses["GET"] == 405 and statuses["other path"] == 200
    for label in ("churn missing field", "churn huge count", "cltv recency > T", "bad JSON", "NaN literal",
                  "deep nesting", "churn unknown key", "cltv bad unit"):
        assert statuses[label] == 400, (label, statuses[label])
    assert statuses["form body"] == 415


def test_a_body_over_the_fast_limit_goes_to_django(world) -> None:
    from rfm_portal.serving.fastpath import MAX_BODY_BYTES

    warm(world)
    rows = [{**world.churn_row, "customer_id": f"c{i:05d}"} for i in range(400)]
    body = json.dumps({"features": rows}).encode()
    assert len(body) > MAX_BODY_BYTES
    fast, django, behind, _ = both("/predict_churn", body, key_headers(world), chunks=7)
    assert behind.calls == 1 and fast.status == 200 and fast.json()["count"] == 400 and fast == django


def test_cold_caches_are_filled_once_in_a_thread_then_answered_fast(world) -> None:
    behind = CountingDjango()
    fast = ScoringFastPath(behind)
    body = {"features": world.churn_row}
    first = send(fast, "/predict_churn", body, key_headers(world))  # key read and model loaded, in a thread
    second = send(fast, "/predict_churn", body, key_headers(world))
    assert (behind.calls, fast.answered, fast.refreshes) == (0, 2, 2)
    assert first == second == send(SyncChainASGIHandler(), "/predict_churn", body, key_headers(world))


def test_a_model_recheck_due_is_run_once_in_a_thread(world, settings) -> None:
    warm(world)
    settings.ACTIVE_MODEL_RECHECK_SECONDS = 3
    behind = CountingDjango()
    fast = ScoringFastPath(behind)
    body = {"features": world.churn_row}
    time.sleep(3.1)
    assert send(fast, "/predict_churn", body, key_headers(world)).status == 200  # rechecked: one query
    assert send(fast, "/predict_churn", body, key_headers(world)).status == 200
    assert (behind.calls, fast.answered, fast.refreshes) == (0, 2, 1)


def test_no_model_to_load_is_left_to_django(world) -> None:
    from churn import api as churn_api
    from rfm_portal.serving.fastpath import Route

    warm(world)
    behind = CountingDjango()
    fast = ScoringFastPath(behind, routes={"/predict_churn": Route(churn_api.fast_path_body,
                                                                   churn_api.PredictChurnApi, "no-such-kind")})
    assert send(fast, "/predict_churn", {"features": world.churn_row}, key_headers(world)).status == 200
    assert (behind.calls, fast.answered) == (1, 0)


def test_revocation_in_this_process_stops_the_fast_path_at_once(world) -> None:
    warm(world)
    behind = CountingDjango()
    fast = ScoringFastPath(behind)
    body = {"features": world.churn_row}
    assert send(fast, "/predict_churn", body, key_headers(world)).status == 200
    committed(lambda: account_services.api_key_revoke(api_key=APIKey.objects.get(pk=world.key_pk)))
    try:
        refused = send(fast, "/predict_churn", body, key_headers(world))
        assert refused.status in (401, 403) and "revoked" in refused.json()["detail"]
        assert (behind.calls, fast.answered) == (1, 1)
    finally:
        committed(lambda: APIKey.objects.filter(pk=world.key_pk).update(revoked_at=None))
        forget_api_key()


def test_revocation_elsewhere_applies_within_the_cache_time(world, settings) -> None:
    """As with Django alone: another process's revocation (no signal here) is seen once the remembered key is
    older than API_KEY_CACHE_SECONDS."""
    settings.API_KEY_CACHE_SECONDS = 4
    warm(world)
    behind = CountingDjango()
    fast = ScoringFastPath(behind)
    body = {"features": world.churn_row}
    # as another process would: no signal reaches this one
    committed(lambda: APIKey.objects.filter(pk=world.key_pk).update(revoked_at="2020-01-01T00:00:00Z"))
    try:
        assert send(fast, "/predict_churn", body, key_headers(world)).status == 200  # still remembered
        assert (behind.calls, fast.answered) == (0, 1)
        time.sleep(4.1)
        refused = send(fast, "/predict_churn", body, key_headers(world))
        assert refused.status in (401, 403) and "revoked" in refused.json()["detail"]
        assert behind.calls == 1
    finally:
        committed(lambda: APIKey.objects.filter(pk=world.key_pk).update(revoked_at=None))
        forget_api_key()


def test_last_use_is_recorded_once_a_minute(world) -> None:
    warm(world)
    behind = CountingDjango()
    fast = ScoringFastPath(behind)
    committed(lambda: APIKey.objects.filter(pk=world.key_pk).update(last_used_at="2020-01-01T00:00:00Z"))
    forget_api_key()
    body = {"features": world.churn_row}
    for _ in range(3):
        assert send(fast, "/predict_churn", body, key_headers(world)).status == 200
    assert (behind.calls, fast.answered, fast.refreshes) == (0, 3, 1)
    assert APIKey.objects.get(pk=world.key_pk).last_used_at.year >= 2026


def test_the_portal_application_serves_http_through_the_fast_path(world) -> None:
    from rfm_portal import asgi

    assert set(asgi.http_app.routes) == {"/predict_churn", "/predict_cltv"}
    warm(world)
    answered = asgi.http_app.answered
    answer = send(asgi.application, "/predict_churn", {"features": world.churn_row}, key_headers(world))
    assert answer.status == 200 and asgi.http_app.answered == answered + 1


def test_an_unknown_middleware_switches_the_fast_path_off(world, settings) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert ScoringFastPath(CountingDjango()).routes == {}
