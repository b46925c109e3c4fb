from django.apps import AppConfig


class MlopsConfig(AppConfig):
    name = "rfm_portal.mlops"
    label = "mlops"
    verbose_name = "Model registry and jobs"
