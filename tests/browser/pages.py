"""Which pages the browser suite opens: every navigation entry plus the detail pages behind them.

Navigation comes from the registry (rfm_portal.dashboard.navigation.CAPABILITIES), so a page a
colleague adds there is covered without touching this file. Detail pages are listed here, each
as a function of the trained fixture data; a URL name that does not exist (yet) is skipped, the
way the navigation itself skips it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import NoReverseMatch, reverse

from rfm_portal.dashboard.navigation import CAPABILITIES


@dataclass(frozen=True)
class Page:
    slug: str
    path: str
    admin_only: bool = False
    expected_status: int = 200


# (slug, url name, args from the fixture data, admin only)
DETAIL_PAGES: tuple[tuple[str, str, Callable[[dict[str, Any]], list[Any]], bool], ...] = (
    ("customer-360", "customers:detail", lambda d: [d["customer"]], False),
    ("import-detail", "customers:import-detail", lambda d: [d["import_job"]], False),
    ("segment-clusters", "segmentation:clusters", lambda d: [], False),
    ("segment-k-search", "segmentation:k-search", lambda d: [], False),
    ("segment-migration", "segmentation:migration", lambda d: [], False),
    ("segment-members", "segmentation:members", lambda d: [], False),
    ("churn-at-risk", "churn:at-risk", lambda d: [], False),
    ("user-create", "accounts:user-create", lambda d: [], True),
    ("api-key-create", "accounts:api-key-create", lambda d: [], True),
    ("api-docs", "api-docs", lambda d: [], False),
    ("api-redoc", "api-redoc", lambda d: [], False),
)


def discover(data: dict[str, Any]) -> list[Page]:
    pages: list[Page] = []
    for cap in CAPABILITIES:
        try:
            pages.append(Page(cap.slug, reverse(cap.url_name), cap.admin_only))
        except NoReverseMatch:
            continue
    for slug, url_name, args, admin_only in DETAIL_PAGES:
        try:
            pages.append(Page(slug, reverse(url_name, args=args(data)), admin_only))
        except NoReverseMatch:
            continue
    for kind, pk in sorted(data["model_versions"].items()):
        pages.append(Page(f"model-{kind}", reverse("mlops:model-detail", args=[pk])))
    pages.append(Page("not-found", "/no-such-page/", expected_status=404))
    return pages
