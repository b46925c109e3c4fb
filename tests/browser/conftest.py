"""A live ASGI server (daphne, in a child process) over small trained models, and headless Chromium.

Chromium and chromedriver are Debian's (/usr/bin/chromium, /usr/bin/chromedriver; `make test`
installs them when missing). The server is the product's own ASGI application, so websockets (the
Jobs page's live feed) work as in production. BROWSER_TEST_PORT picks its port (default: any free one).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test.utils import override_settings

from rfm_portal.accounts.models import User
from rfm_portal.customers.generator import generate, write_outputs
from rfm_portal.customers.services import import_transactions
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.recorded import run_recorded

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
PASSWORD = "browser-suite-Secret-42"
N_CUSTOMERS = 300
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


def _wipe() -> None:
    from cltv.models import CLTVScore
    from rfm_portal.customers.models import CampaignHistory, Customer, ImportJob, Product, Transaction
    from rfm_portal.mlops.models import Job, ModelVersion

    for app_label, model_name in (("churn", "ChurnScore"), ("segmentation", "RFMScore")):
        from django.apps import apps

        try:
            apps.get_model(app_label, model_name).objects.all().delete()
        except LookupError:
            pass
    CLTVScore.objects.all().delete()
    Job.objects.all().delete()
    ModelVersion.objects.all().delete()
    CampaignHistory.objects.all().delete()
    Transaction.objects.all().delete()
    Customer.objects.all().delete()
    ImportJob.objects.all().delete()
    Product.objects.all().delete()
    User.objects.filter(username__in=["browser-analyst", "browser-admin"]).delete()
    registry.clear_model_cache()


@pytest.fixture(scope="module")
def portal_data(django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Generated customers imported and every capability trained, committed so the server sees them;
    deleted when the module ends, so the rest of the suite starts from an empty database."""
    from churn.services import train_churn_model
    from cltv.services import train_cltv_model
    from segmentation.services import train_segmentation

    artifacts = tmp_path_factory.mktemp("browser_artifacts")
    with override_settings(ARTIFACT_ROOT=artifacts, PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        with django_db_blocker.unblock():
            _wipe()
            data = generate(N_CUSTOMERS, seed=3, start=date(2023, 1, 1), end=date(2024, 6, 30))
            paths = write_outputs(data, tmp_path_factory.mktemp("browser_gen"), prefix="gen")
            job = import_transactions(Path(paths["transactions"]), file_name="sample.csv")
            assert job.status == "succeeded", job.message
            versions = {
                "segmentation": run_recorded("segmentation.setup", lambda r: train_segmentation(reporter=r)),
                "cltv": run_recorded("cltv.setup", lambda r: train_cltv_model(reporter=r, n_draws=30)),
                "churn": run_recorded("churn.setup", lambda r: train_churn_model(reporter=r))[0],
            }
            from cltv.models import CLTVScore

            top = CLTVScore.objects.filter(model_version=versions["cltv"]).order_by("-clv").select_related("customer")
            User.objects.create_user("browser-analyst", password=PASSWORD, role=User.Role.ANALYST)
            User.objects.create_user("browser-admin", password=PASSWORD, role=User.Role.ADMIN)
            yield {
                "customer": top.first().customer.external_id,
                "import_job": job.pk,
                "model_versions": {kind: mv.pk for kind, mv in versions.items()},
                "artifacts": artifacts,
            }
            _wipe()


@pytest.fixture(scope="module")
def live_url(portal_data) -> Iterator[str]:
    """The product's ASGI app (static files included) served by daphne in a child process."""
    from functools import partial

    from channels.testing.live import make_application
    from daphne.testing import DaphneProcess
    from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

    # the child is forked with these settings; close the parent's connections so none is shared
    with override_settings(ARTIFACT_ROOT=portal_data["artifacts"]):
        connections.close_all()
        server = DaphneProcess(
            "127.0.0.1",
            partial(make_application, static_wrapper=ASGIStaticFilesHandler),
            port=int(os.environ.get("BROWSER_TEST_PORT", "0")),
        )
        server.daemon = True
        server.start()
        if not server.ready.wait(timeout=30):
            server.terminate()
            raise RuntimeError("the live server did not start within 30 s")
        try:
            yield f"http://127.0.0.1:{server.port.value}"
        finally:
            server.terminate()
            server.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        assert shutil.which(path), f"{path} is missing: `make test` installs chromium and chromium-driver (apt-get)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900",
                "--disable-extensions", "--no-first-run", "--disable-background-networking"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
