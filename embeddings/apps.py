from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
    label = "embeddings"
    verbose_name = "Lookalikes (Customer2Vec)"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=40, template="embeddings/customer_panel.html", build=customer_panel_context)

        from rfm_portal.mlops.model_cards import register_model_card

        from .model_card import card_sections

        register_model_card("embeddings", card_sections)
        from rfm_portal.privacy.registry import register_customer_store

        from . import privacy

        register_customer_store(name="embeddings-index", erase=privacy.erase_from_index,
                                export=privacy.export_from_index, contains=privacy.index_contains)
