"""Generated customers, CLTV and churn models trained once for the package, committed; a fresh stream per test.

The data is committed (not wrapped in a test transaction) because consumers run in other
processes in some tests and must see it; everything a test streams in is deleted afterwards
(``live_db``), so every module starts from the same data. No test here trains or promotes a model.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session

from churn.models import ChurnScore
from churn.services import train_churn_model
from cltv.models import CLTVScore
from cltv.services import train_cltv_model
from rfm_portal.accounts.models import User
from rfm_portal.customers import generator
from rfm_portal.customers import services as customer_services
from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.models import Job, ModelVersion
from streaming.backends import get_stream
from streaming.models import LiveRisk, RiskChange, StreamEvent

N_CUSTOMERS = 300
SEED = 13
START, END = date(2023, 1, 1), date(2024, 6, 30)


@dataclass
class Trained:
    artifact_root: Path
    base_customers: set[int]
    high_risk: list[str]  # external ids of customers in the high band of the active churn model
    products: list[tuple[str, str, str]]


def wipe_stream_rows(base_customers: set[int] | None = None) -> None:
    RiskChange.objects.all().delete()
    LiveRisk.objects.all().delete()
    StreamEvent.objects.all().delete()
    Transaction.objects.filter(import_job__isnull=True).delete()
    if base_customers is not None:
        Customer.objects.exclude(pk__in=base_customers).delete()


def wipe_all() -> None:
    wipe_stream_rows()
    ChurnScore.objects.all().delete()
    CLTVScore.objects.all().delete()
    Job.objects.all().delete()
    ModelVersion.objects.all().delete()
    CampaignHistory.objects.all().delete()
    Transaction.objects.all().delete()
    Customer.objects.all().delete()
    ImportJob.objects.all().delete()
    Product.objects.all().delete()
    Session.objects.all().delete()
    User.objects.all().delete()
    registry.clear_model_cache()


@pytest.fixture(scope="session")
def test_database(django_db_setup, django_db_blocker, django_db_keepdb) -> Iterator[None]:
    """The test database, even when no collected test asks for ``db``.

    pytest-django only creates test databases that some collected test requests through
    ``db``/``django_db``; these fixtures use committed access (``django_db_blocker.unblock()``),
    so on their own they would otherwise run against — and wipe — the real DATABASE_URL database.
    """
    from django.db import connection
    from django.test.utils import setup_databases, teardown_databases

    if connection.settings_dict["NAME"].startswith("test_"):
        yield
        return
    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, aliases={"default"}, keepdb=django_db_keepdb)
    assert connection.settings_dict["NAME"].startswith("test_")
    yield
    if not django_db_keepdb:
        with django_db_blocker.unblock():
            teardown_databases(config, verbosity=0)


@pytest.fixture(scope="package")
def trained(test_database, django_db_blocker, tmp_path_factory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("stream_artifacts")
    previous_root = django_settings.ARTIFACT_ROOT
    django_settings.ARTIFACT_ROOT = root
    data = generator.generate(N_CUSTOMERS, SEED, start=START, end=END)
    paths = generator.write_outputs(data, tmp_path_factory.mktemp("stream_gen"))
    with django_db_blocker.unblock():
        wipe_all()
        job = customer_services.import_transactions(paths["transactions"])
        assert job.status == ImportJob.Status.SUCCEEDED, job.message
        train_cltv_model(observation_end=END + timedelta(days=1), unit="W", n_draws=20)
        train_churn_model()
        high = list(ChurnScore.objects.filter(risk_band="high", model_version__status="active")
                    .values_list("customer__external_id", flat=True)[:20])
        products = list(Product.objects.values_list("sku", "description", "category")[:20])
        yield Trained(root, set(Customer.objects.values_list("pk", flat=True)), high, products)
        wipe_all()
    django_settings.ARTIFACT_ROOT = previous_root


@pytest.fixture
def live_db(trained, django_db_blocker) -> Iterator[Trained]:
    """Committed database access for one test; what the test streamed in is removed afterwards."""
    with django_db_blocker.unblock():
        wipe_stream_rows(trained.base_customers)
        yield trained
        wipe_stream_rows(trained.base_customers)
        Session.objects.all().delete()
        User.objects.all().delete()


def _own_stream(settings, partitions: int) -> Iterator:
    tag = uuid.uuid4().hex[:10]
    settings.STREAM = {**settings.STREAM, "KEY": f"test:{tag}:events", "DEAD_LETTER_KEY": f"test:{tag}:dead",
                       "GROUP": "test-consumers", "BLOCK_MS": 50, "CLAIM_EVERY_S": 0.2, "TRIM_EVERY_S": 0.5,
                       "FEED_TICK_S": 0.05, "PARTITIONS": partitions, "HEARTBEAT_S": 0.1}
    s = get_stream()
    assert type(s).__name__ == "RedisStream", "tests run with REDIS_URL set"
    assert s.partitions == partitions
    s.ensure_group()
    yield s
    s.delete()


@pytest.fixture
def stream(settings):
    """A stream (one partition), group and dead-letter stream of this test's own on the real Redis."""
    yield from _own_stream(settings, 1)


@pytest.fixture
def partitioned(settings):
    """Like ``stream``, in three partition streams."""
    yield from _own_stream(settings, 3)


def stream_env(stream_settings: dict, artifact_root: Path, **extra: str) -> dict[str, str]:
    """Environment for a consumer subprocess: the test database, this test's stream, the test artifacts."""
    from django.db import connection

    db = connection.settings_dict
    env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
           "STREAM_KEY": stream_settings["KEY"], "STREAM_DEAD_LETTER_KEY": stream_settings["DEAD_LETTER_KEY"],
           "STREAM_GROUP": stream_settings["GROUP"], "STREAM_PARTITIONS": str(stream_settings["PARTITIONS"]),
           "ARTIFACT_ROOT": str(artifact_root)}
    env.update(extra)
    return env


def event(event_id: str, customer_id: str, *, kind: str = "purchase", when: datetime | None = None,
          sku: str = "HK-001", quantity: int = 2, price: str = "6.49") -> dict:
    return {"event_id": event_id, "type": kind, "customer_id": customer_id,
            "occurred_at": (when or datetime(2024, 7, 10, 12, 0, tzinfo=UTC)).isoformat(),
            "lines": [{"sku": sku, "description": "Enamel Mug", "category": "Home & Kitchen", "quantity": quantity,
                       "unit_price": price}]}
