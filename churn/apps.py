from django.apps import AppConfig


class ChurnConfig(AppConfig):
    name = "churn"
    label = "churn"
    verbose_name = "Churn risk"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=30, template="churn/customer_panel.html", build=customer_panel_context)

        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)
