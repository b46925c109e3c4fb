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

        from rfm_portal.mlops.kinds import KeyMetric, register_job_kind, register_model_kind

        register_model_kind("segmentation", "Segments and clusters", page_url_name="segmentation:overview",
                            key_metrics=[
            KeyMetric("Clusters (k)", "k", fmt="int"),
            KeyMetric("Silhouette", lambda m: (m.get("silhouette_by_k") or {}).get(str(m.get("k"))),
                      help="How well separated the clusters are: -1 to 1, higher is better."),
            KeyMetric("Customers", "customers", fmt="int"),
        ])
        register_job_kind("segmentation.train", "Segment customers (RFM + clusters)")
        register_job_kind("segmentation.setup", "Set-up: segment customers")
        from rfm_portal.mlops.model_cards import register_group_labeller, register_model_card
        from segmentation.model_card import card_sections, rfm_segment_labels

        register_model_card("segmentation", card_sections)
        register_group_labeller("rfm_segment", rfm_segment_labels)
        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)
