from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "rfm_portal.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
