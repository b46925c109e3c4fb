from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "rfm_portal.accounts"
    label = "accounts"
    verbose_name = "Accounts, roles and API keys"

    def ready(self) -> None:
        from . import (
            schema,  # noqa: F401  registers the OpenAPI extension
            signals,  # noqa: F401  closes a deactivated user's websockets
        )
