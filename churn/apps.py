from django.apps import AppConfig


class ChurnConfig(AppConfig):
    name = "churn"
    label = "churn"
    verbose_name = "Churn risk"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=30, template="churn/customer_panel.html", build=customer_panel_context)

        from rfm_portal.mlops.model_cards import register_model_card

        from .model_card import card_sections

        register_model_card("churn", card_sections)
        register_model_card("churn_challenger", card_sections)
