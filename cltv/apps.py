from django.apps import AppConfig


class CltvConfig(AppConfig):
    name = "cltv"
    label = "cltv"
    verbose_name = "Customer lifetime value"
