from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "rfm_portal.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        from rfm_portal.mlops.signals import model_activated
        from rfm_portal.privacy.registry import register_customer_store

        from . import summaries

        model_activated.connect(summaries.on_model_activated, dispatch_uid="dashboard.page_summaries")
        # A stored page summary may name a customer (e.g. the churn decision plot): erasure drops them all.
        register_customer_store(name="page-summaries", erase=summaries.erase_summaries,
                                export=summaries.export_summaries, contains=summaries.summaries_contain)
