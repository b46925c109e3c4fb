from __future__ import annotations

from django.core.management.base import BaseCommand, CommandParser

from rfm_portal.accounts import services
from rfm_portal.accounts.models import User


class Command(BaseCommand):
    help = "Create (or refresh) a demo admin and a demo analyst and print their logins. Idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--admin-username", default="admin")
        parser.add_argument("--admin-password", default=None, help="default: generated (new user) or unchanged")
        parser.add_argument("--analyst-username", default="analyst")
        parser.add_argument("--analyst-password", default=None, help="default: generated (new user) or unchanged")

    def handle(self, *args, **options) -> None:
        logins = [
            services.demo_user_ensure(
                username=options["admin_username"], role=User.Role.ADMIN, password=options["admin_password"]
            ),
            services.demo_user_ensure(
                username=options["analyst_username"], role=User.Role.ANALYST, password=options["analyst_password"]
            ),
        ]
        self.stdout.write("Demo logins:")
        for login in logins:
            state = "created" if login.created else "already present"
            self.stdout.write(f"  {login.role:<8} username: {login.username:<12} password: {login.password}  ({state})")
