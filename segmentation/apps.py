from django.apps import AppConfig


class SegmentationConfig(AppConfig):
    name = "segmentation"
    label = "segmentation"
    verbose_name = "Segmentation"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel
        from segmentation import tasks  # noqa: F401  (registers the Celery tasks)
        from segmentation.views import customer_panel_context

        register_customer_panel(order=5, template="segmentation/customer_panel.html", build=customer_panel_context)

        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)
