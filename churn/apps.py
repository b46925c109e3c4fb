from django.apps import AppConfig


class ChurnConfig(AppConfig):
    name = "churn"
    label = "churn"
    verbose_name = "Churn risk"
