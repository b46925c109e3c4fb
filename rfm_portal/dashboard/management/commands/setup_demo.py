"""Prepare the embedded demo: migrate, load the sample data once, create demo users."""

from __future__ import annotations

import json
import os
import secrets

from django.conf import settings
from django.core.management import BaseCommand, call_command

from rfm_portal.customers.models import CampaignHistory, Transaction
from rfm_portal.customers.services import import_campaign_history, import_transactions
from rfm_portal.mlops.selectors import active_version


class Command(BaseCommand):
    help = "Migrate, import data/sample*.csv if the database is empty, create demo users and print their logins."

    def handle(self, *args, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        sample = settings.DATA_DIR / "sample.csv"
        if not Transaction.objects.exists():
            self.stdout.write(f"Importing {sample.name} …")
            job = import_transactions(sample, file_name=sample.name)
            self.stdout.write(f"  {job.get_status_display()}: {job.rows_inserted:,} transactions.")
        else:
            self.stdout.write(f"Transactions already loaded ({Transaction.objects.count():,}); not importing again.")
        campaigns = settings.DATA_DIR / "sample_campaigns.csv"
        if not CampaignHistory.objects.exists():
            job = import_campaign_history(campaigns, file_name=campaigns.name)
            self.stdout.write(f"  {job.get_status_display()}: {job.rows_inserted:,} campaign records.")
        self._train_missing_models()
        passwords = self._demo_passwords()
        call_command(
            "create_demo_users",
            admin_password=passwords["admin"],
            analyst_password=passwords["analyst"],
            stdout=self.stdout,
        )
        self.stdout.write(f"(Kept in {self._logins_file()} for the next run of this embedded demo.)")

    def _train_missing_models(self) -> None:
        """Train each capability once, so the demo opens with real results; later runs reuse them."""
        from churn.services import train_churn_model
        from cltv.services import train_cltv_model
        from rfm_portal.mlops.recorded import call_with_reporter, run_recorded
        from segmentation.services import train_segmentation

        trainers = (("segmentation", train_segmentation), ("cltv", train_cltv_model), ("churn", train_churn_model))
        for kind, train in trainers:
            active = active_version(kind)
            if active is not None:
                self.stdout.write(f"{kind}: v{active.version} already active.")
                continue
            self.stdout.write(f"Training {kind} …")
            # Recorded as a Job ("<kind>.setup") so the Jobs page lists the demo's own trainings.
            run_recorded(f"{kind}.setup", lambda reporter, train=train: call_with_reporter(train, reporter))
            self.stdout.write(f"  {kind}: v{active_version(kind).version} active.")

    @staticmethod
    def _logins_file():
        return settings.VAR_DIR / "demo_logins.json"

    def _demo_passwords(self) -> dict[str, str]:
        """Random demo passwords, made once per embedded database and printed on every run."""
        path = self._logins_file()
        if path.exists():
            return json.loads(path.read_text())
        passwords = {"admin": secrets.token_urlsafe(12), "analyst": secrets.token_urlsafe(12)}
        path.write_text(json.dumps(passwords))
        os.chmod(path, 0o600)
        return passwords
