from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "rfm_portal.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (connects the receivers)
