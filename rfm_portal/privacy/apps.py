from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    name = "rfm_portal.privacy"
    label = "privacy"
    verbose_name = "Privacy: erasure, access, limitations"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=90, template="privacy/customer_panel.html", build=customer_panel_context)
