"""Who may open what: every URL the resolver knows, for every kind of caller.

New URLs are picked up automatically. Their expected access comes from a few rules
(public = login only; admin-only = the accounts app, upload pages, promotion and job
starts; /api/ = sessions and API keys) plus a small table of exceptions. A new URL
with arguments needs sample arguments in SAMPLE_KWARGS, otherwise its test fails
with a message saying so: nothing is skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from rfm_portal.accounts import services as account_services
from rfm_portal.customers.models import Customer, ImportJob
from rfm_portal.mlops.models import Job, ModelVersion

PUBLIC = {"login"}
# The Django admin site has its own (staff) login and is not part of the portal.
EXCLUDED_PREFIXES = ("django-admin/",)
ADMIN_ONLY_NAMESPACES = {"accounts"}
ADMIN_ONLY = {"mlops:model-promote", "mlops:model-rollback", "mlops:job-start"}
# Campaigns: analysts draft, plan and submit; admins approve, reject, export, close and manage templates.
ADMIN_ONLY |= {"campaigns:approve", "campaigns:reject", "campaigns:export", "campaigns:close",
               "campaigns:template-new", "campaigns:template-edit", "campaigns:template-delete"}
# Audit log (whole namespace) and customer erasure/export: admins only.
ADMIN_ONLY_NAMESPACES |= {"audit"}
ADMIN_ONLY |= {"privacy:customer-erase", "privacy:customer-export"}
# Starting a training run is an admin action in every capability app.
ADMIN_ONLY_URL_NAMES = {"train", "retrain"}
# The scoring endpoints CRM systems call sit at the root (POST /predict_churn, …), not under /api/.
API_ROUTE_PREFIXES = ("api/", "predict_churn", "predict_cltv", "similar_customers", "uplift_score")
# API endpoints that act on behalf of the company: an integration key or an admin.
API_KEY_OR_ADMIN = {"customers:api-imports"}
# POSTing logs the user out, which looks exactly like a refusal; GET is still checked.
NO_POST = {"logout"}

SAMPLE_KWARGS: dict[str, Callable[[dict], dict]] = {
    "customers:detail": lambda objs: {"external_id": objs["customer"].external_id},
    "customers:import-detail": lambda objs: {"pk": objs["import_job"].pk},
    "accounts:user-role": lambda objs: {"pk": objs["other_user"].pk},
    "accounts:user-deactivate": lambda objs: {"pk": objs["other_user"].pk},
    "accounts:api-key-revoke": lambda objs: {"pk": objs["spare_key"].pk},
    "mlops:model-promote": lambda objs: {"pk": objs["model_version"].pk},
    "mlops:model-detail": lambda objs: {"pk": objs["model_version"].pk},
    "mlops:model-card": lambda objs: {"pk": objs["model_version"].pk},
    "mlops:model-rollback": lambda objs: {"kind": objs["model_version"].kind},
    "mlops:job-start": lambda objs: {"name": "recompute_customer_first_seen"},
    "mlops:api-job": lambda objs: {"pk": objs["job"].pk},
    "segmentation:api-customer-rfm": lambda objs: {"external_id": objs["customer"].external_id},
    "privacy:customer-erase": lambda objs: {"external_id": objs["customer"].external_id},
    "privacy:customer-export": lambda objs: {"external_id": objs["customer"].external_id},
}


def _sample_campaign(objs: dict) -> dict:
    from campaigns.models import Campaign

    campaign, _ = Campaign.objects.get_or_create(name="Sample campaign", defaults={
        "goal": "retain", "budget": 100.0, "channels": [{"name": "email", "cost": 0.1, "effect_factor": 1.0}]})
    return {"pk": campaign.pk}


def _sample_template(objs: dict) -> dict:
    from campaigns.models import MessageTemplate

    template, _ = MessageTemplate.objects.get_or_create(name="Sample template", defaults={
        "goal": "retain", "body": "{{ offer }}"})
    return {"pk": template.pk}


SAMPLE_KWARGS.update({f"campaigns:{name}": _sample_campaign for name in (
    "detail", "edit", "plan", "submit", "approve", "reject", "export", "measure", "close", "targets", "api-targets")})
SAMPLE_KWARGS.update({"campaigns:template-edit": _sample_template, "campaigns:template-delete": _sample_template})


def walk(patterns, prefix: str = "", namespace: str | None = None) -> Iterator[tuple[str, str, URLPattern]]:
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(filter(None, [namespace, entry.namespace])) or None
            yield from walk(entry.url_patterns, route, inner)
        elif entry.name:
            yield route, f"{namespace}:{entry.name}" if namespace else entry.name, entry


def portal_urls() -> list[tuple[str, str, bool]]:
    found = {}
    for route, name, pattern in walk(get_resolver().url_patterns):
        if route.startswith(EXCLUDED_PREFIXES):
            continue
        found.setdefault(name, (route, bool(pattern.pattern.converters)))
    return sorted((name, route, has_args) for name, (route, has_args) in found.items())


URLS = portal_urls()
API_URLS = [u for u in URLS if u[1].startswith(API_ROUTE_PREFIXES)]


def category(name: str, route: str) -> str:
    if name in PUBLIC:
        return "public"
    if route.startswith(API_ROUTE_PREFIXES):
        return "api-key-or-admin" if name in API_KEY_OR_ADMIN else "api"
    namespace = name.split(":")[0] if ":" in name else ""
    admin_action = name.split(":")[-1] in ADMIN_ONLY_URL_NAMES or name in ADMIN_ONLY or "upload" in name
    if namespace in ADMIN_ONLY_NAMESPACES or admin_action:
        return "admin"
    return "portal"


# What each caller gets, per category: allow, deny (401/403) or login (redirect to it).
EXPECTED = {
    "public": {"anonymous": "allow", "analyst": "allow", "admin": "allow", "api_key": "allow"},
    "portal": {"anonymous": "login", "analyst": "allow", "admin": "allow", "api_key": "login"},
    "admin": {"anonymous": "login", "analyst": "deny", "admin": "allow", "api_key": "login"},
    "api": {"anonymous": "deny", "analyst": "allow", "admin": "allow", "api_key": "allow"},
    "api-key-or-admin": {"anonymous": "deny", "analyst": "deny", "admin": "allow", "api_key": "allow"},
}
CALLERS = ("anonymous", "analyst", "admin", "api_key")


@pytest.fixture
def objects(db, admin) -> dict:
    other = account_services.user_create(username="carol", password="a-long-enough-pass-7", role="analyst")
    mv = ModelVersion.objects.create(kind="churn", version=1, status=ModelVersion.Status.READY)
    return {
        "customer": Customer.objects.create(external_id="C-1", country="France"),
        "import_job": ImportJob.objects.create(file_name="t.csv", created_by=admin),
        "other_user": other,
        "spare_key": account_services.api_key_create(name="Spare").api_key,
        "model_version": mv,
        "job": Job.objects.create(kind="test"),
    }


@pytest.fixture
def callers(analyst_client, admin_client, api_key) -> dict[str, Client]:
    return {
        "anonymous": Client(),
        "analyst": analyst_client,
        "admin": admin_client,
        "api_key": Client(headers={"authorization": f"Api-Key {api_key[1]}"}),
    }


def resolve(name: str, has_args: bool, objects: dict) -> str:
    if not has_args:
        return reverse(name)
    assert name in SAMPLE_KWARGS, f"{name} takes arguments: add sample kwargs to SAMPLE_KWARGS so it is checked"
    return reverse(name, kwargs=SAMPLE_KWARGS[name](objects))


def assert_outcome(response, expected: str, label: str) -> None:
    status = response.status_code
    redirected_to_login = status == 302 and response["Location"].startswith(reverse("login"))
    assert status < 500, f"{label}: server error {status}"
    if expected == "allow":
        assert status not in (401, 403) and not redirected_to_login, f"{label}: refused ({status})"
    elif expected == "deny":
        # A POST-only view may answer a GET with 405 before checking the role: also a refusal.
        refused = (401, 403, 405) if label.split()[1] == "GET" else (401, 403)
        assert status in refused, f"{label}: expected 401/403, got {status}"
    else:
        assert redirected_to_login, f"{label}: expected a redirect to the login page, got {status}"


def test_every_known_url_is_classified():
    """The walk finds the URLs this matrix is about (guards against an empty walk)."""
    names = {name for name, _route, _args in URLS}
    assert {"login", "accounts:users", "accounts:api-keys", "mlops:jobs", "mlops:models", "mlops:api-jobs"} <= names
    assert category("customers:import-upload", "imports/upload/") == "admin"


CASES = [
    (name, route, has_args, method)
    for name, route, has_args in URLS
    for method in ("get", "post")
    if not (method == "post" and name in NO_POST)
]


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("name", "route", "has_args", "method"), CASES, ids=[f"{c[3]}-{c[0]}" for c in CASES])
def test_access(name, route, has_args, method, caller, callers, objects):
    url = resolve(name, has_args, objects)
    response = getattr(callers[caller], method)(url)
    assert_outcome(response, EXPECTED[category(name, route)][caller], f"{caller} {method.upper()} {url}")


@pytest.mark.parametrize("state", ["revoked", "expired"])
@pytest.mark.parametrize(
    ("name", "route", "has_args"), API_URLS, ids=[u[0] for u in API_URLS]
)
def test_revoked_and_expired_keys_are_refused_everywhere(name, route, has_args, state, objects, client):
    created = account_services.api_key_create(name=f"{state} key")
    if state == "revoked":
        account_services.api_key_revoke(api_key=created.api_key)
    else:
        created.api_key.expires_at = timezone.now() - timedelta(minutes=1)
        created.api_key.save(update_fields=["expires_at"])
    url = resolve(name, has_args, objects)
    for method in ("get", "post"):
        response = getattr(client, method)(url, headers={"authorization": f"Api-Key {created.raw_key}"})
        assert response.status_code in (401, 403), f"{state} key {method.upper()} {url}: {response.status_code}"
