from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "rfm_portal.customers"
    label = "customers"
    verbose_name = "Customers and transactions"

    def ready(self) -> None:
        from . import tasks  # noqa: F401  connects the receiver that fails an import whose job failed
