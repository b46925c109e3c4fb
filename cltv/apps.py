from django.apps import AppConfig


class CltvConfig(AppConfig):
    name = "cltv"
    label = "cltv"
    verbose_name = "Customer lifetime value"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=20, template="cltv/customer_panel.html", build=customer_panel_context)

        from rfm_portal.mlops.kinds import KeyMetric, register_job_kind, register_model_kind

        def _charts(metrics):
            import pandas as pd

            from cltv import charts

            cvh = pd.DataFrame(metrics["validation"]["calibration_vs_holdout"]).set_index("frequency_cal")
            comparison = pd.DataFrame(metrics["comparison"])
            return [
                ("Each candidate's holdout error; the lowest was chosen.",
                 charts.model_comparison_figure(comparison, metrics.get("selection_metric", "rmse"))),
                ("Predicted vs actual holdout purchases by past purchases.", charts.calibration_vs_holdout_figure(cvh)),
            ]

        register_model_kind("cltv", "Lifetime value (CLTV)", charts=_charts, page_url_name="cltv:overview",
                            key_metrics=[
            KeyMetric("Model", "chosen_label", fmt="text"),
            KeyMetric("Holdout error", "holdout_aggregate_error", fmt="signed_percent",
                      help="Total predicted vs actual purchases in the holdout period."),
            KeyMetric("RMSE / customer", "holdout_rmse", digits=2, help="Per-customer error in holdout purchases."),
        ])
        register_job_kind("cltv.train", "Train the lifetime-value model")
        register_job_kind("cltv.setup", "Set-up: train the lifetime-value model")
        from rfm_portal.mlops.model_cards import register_model_card

        from .model_card import card_sections

        register_model_card("cltv", card_sections)
        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)

        from rfm_portal.mlops.scoring import register_scorer

        from .services import SCORER

        register_scorer(SCORER)
