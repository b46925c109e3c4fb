from django.apps import AppConfig


class StreamingConfig(AppConfig):
    name = "streaming"
    label = "streaming"
    verbose_name = "Live events"

    def ready(self) -> None:
        from rfm_portal.privacy.registry import register_customer_store

        from . import privacy

        register_customer_store(name="stream-dead-letters", erase=privacy.erase_dead_letters,
                                export=privacy.export_dead_letters, contains=privacy.dead_letters_contain)
