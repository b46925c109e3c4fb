"""Customer-360 panels contributed by capability apps.

Each app registers a function in its AppConfig.ready(); the customer page renders
every panel that returns something, in registration order:

    register_customer_panel(order=10, template="cltv/customer_panel.html", build=cltv_panel_context)

`build(customer)` returns the template's context, or None when the app has nothing
for this customer yet (no active model, customer not scored).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .models import Customer


@dataclass(frozen=True)
class CustomerPanel:
    order: int
    template: str
    build: Callable[[Customer], dict[str, Any] | None]


_PANELS: list[CustomerPanel] = []


def register_customer_panel(*, order: int, template: str, build: Callable[[Customer], dict[str, Any] | None]) -> None:
    if any(panel.template == template for panel in _PANELS):
        return  # ready() can run twice in tests; one registration per template
    _PANELS.append(CustomerPanel(order, template, build))
    _PANELS.sort(key=lambda panel: panel.order)


def customer_panels(customer: Customer) -> list[tuple[str, dict[str, Any]]]:
    rendered = []
    for panel in _PANELS:
        context = panel.build(customer)
        if context is not None:
            rendered.append((panel.template, context))
    return rendered
