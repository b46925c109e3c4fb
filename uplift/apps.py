from django.apps import AppConfig


class UpliftConfig(AppConfig):
    name = "uplift"
    label = "uplift"
    verbose_name = "Uplift"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=40, template="uplift/customer_panel.html", build=customer_panel_context)

        from rfm_portal.mlops.model_cards import register_model_card

        from .model_card import card_sections

        register_model_card("uplift", card_sections)
        register_model_card("uplift_challenger", card_sections)
        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)

        from rfm_portal.mlops.scoring import register_scorer

        from .services import SCORER

        register_scorer(SCORER)
