from django.apps import AppConfig


class ChurnConfig(AppConfig):
    name = "churn"
    label = "churn"
    verbose_name = "Churn risk"

    def ready(self) -> None:
        from rfm_portal.customers.panels import register_customer_panel

        from .views import customer_panel_context

        register_customer_panel(order=30, template="churn/customer_panel.html", build=customer_panel_context)

        from rfm_portal.mlops.kinds import KeyMetric, register_job_kind, register_model_kind

        def _holdout(name: str):
            return lambda m: m.get(name, (m.get("holdout") or {}).get(name))

        churn_metrics = [
            KeyMetric("Model", "model_kind", fmt="text"),
            KeyMetric("AUC", _holdout("roc_auc"), help="Out-of-time ROC-AUC: 0.5 is guessing, 1 is perfect."),
            KeyMetric("Brier", _holdout("brier"), digits=4, help="Squared error of the probabilities; lower wins."),
        ]
        def _charts(metrics):
            from churn import charts

            comparison = metrics["comparison"]
            return [
                ("Backtest: how well each model ranks churners (higher is better).", charts.roc_figure(comparison)),
                ("Predicted vs observed churn rate by risk decile.", charts.calibration_figure(comparison)),
            ]

        register_model_kind("churn", "Churn risk", churn_metrics, charts=_charts, page_url_name="churn:overview")
        register_model_kind("churn_challenger", "Churn risk (challenger)", churn_metrics)
        register_job_kind("churn.train", "Train the churn model")
        register_job_kind("churn.setup", "Set-up: train the churn model")
        from rfm_portal.mlops.model_cards import register_model_card

        from .model_card import card_sections

        register_model_card("churn", card_sections)
        register_model_card("churn_challenger", card_sections)
        from rfm_portal.customers.table import register_table_contribution

        from .table import CONTRIBUTION as TABLE_CONTRIBUTION

        register_table_contribution(TABLE_CONTRIBUTION)

        from rfm_portal.mlops.scoring import register_scorer

        from .services import SCORER

        register_scorer(SCORER)
