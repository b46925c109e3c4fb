from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfm_portal.accounts import services


class Command(BaseCommand):
    help = "Create an API key for a CRM integration and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="which integration uses the key")
        parser.add_argument("--expires-days", type=int, default=None, help="days until the key expires")

    def handle(self, *args, name: str, expires_days: int | None, **options) -> None:
        try:
            created = services.api_key_create(name=name, expires_in_days=expires_days)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        expiry = created.api_key.expires_at.isoformat() if created.api_key.expires_at else "never"
        key = created.api_key
        self.stderr.write(f"API key {key.name!r} created (prefix {key.prefix}, expires {expiry}).")
        self.stderr.write("Store it now; it cannot be shown again:")
        # The key alone on stdout so scripts can capture it: KEY=$(manage.py create_api_key crm)
        self.stdout.write(created.raw_key)
