from django.apps import AppConfig


class MlopsConfig(AppConfig):
    name = "rfm_portal.mlops"
    label = "mlops"
    verbose_name = "Model registry and jobs"

    def ready(self) -> None:
        from .kinds import register_job_kind

        register_job_kind("mlops.recompute_customer_first_seen", "Recompute customers' first-seen dates")
        register_job_kind("mlops.score_version", "Score all customers with a model version")
