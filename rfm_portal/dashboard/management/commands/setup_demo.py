"""Prepare the embedded demo: migrate, generate and load the demo data once, train every model, create demo users.

The demo data are generated at set-up (``DEMO_CUSTOMERS`` customers, fixed ``DEMO_SEED``, continuous
acquisition) into ``var/demo/``: big enough that the uplift model sees more than noise. The small
committed ``data/sample*.csv`` stay for the tests. The truth file is written beside the data for
evaluation and never imported.
"""

from __future__ import annotations

import json
import os
import secrets
import time

from django.conf import settings
from django.core.management import BaseCommand, CommandParser, call_command

from rfm_portal.customers import generator
from rfm_portal.customers.models import CampaignHistory, Transaction
from rfm_portal.customers.services import import_campaign_history, import_transactions
from rfm_portal.mlops.selectors import active_version

DEMO_CUSTOMERS = 20_000
DEMO_SEED = 2024


class Command(BaseCommand):
    help = ("Migrate, generate and import the demo data if the database is empty, train every model once, "
            "create demo users and print their logins.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=DEMO_CUSTOMERS,
                            help=f"Demo customers to generate (default {DEMO_CUSTOMERS:,}).")
        parser.add_argument("--seed", type=int, default=DEMO_SEED, help=f"Generator seed (default {DEMO_SEED}).")

    def handle(self, *args, **options) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")
        demo_dir = settings.VAR_DIR / "demo"
        sample = demo_dir / "demo.csv"
        campaigns = demo_dir / "demo_campaigns.csv"
        if not Transaction.objects.exists():
            n, seed = options.get("customers", DEMO_CUSTOMERS), options.get("seed", DEMO_SEED)
            self.stdout.write(f"Generating {n:,} demo customers (seed {seed}, continuous acquisition) …")
            data = generator.generate(n, seed, params=generator.GeneratorParams(acquisition_share=1.0))
            generator.write_outputs(data, demo_dir, prefix="demo")
            self.stdout.write(f"Importing {sample.name} …")
            job = import_transactions(sample, file_name=sample.name)
            self.stdout.write(f"  {job.get_status_display()}: {job.rows_inserted:,} transactions.")
        else:
            self.stdout.write(f"Transactions already loaded ({Transaction.objects.count():,}); not importing again.")
        if not CampaignHistory.objects.exists() and campaigns.exists():
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
        from embeddings.services import train_embeddings_model
        from rfm_portal.mlops.recorded import call_with_reporter, run_recorded
        from segmentation.services import train_segmentation
        from uplift.services import UpliftError, train_uplift_model

        trainers = (("segmentation", train_segmentation), ("cltv", train_cltv_model), ("churn", train_churn_model),
                    ("uplift", train_uplift_model), ("embeddings", train_embeddings_model))
        for kind, train in trainers:
            active = active_version(kind)
            if active is not None:
                self.stdout.write(f"{kind}: v{active.version} already active.")
                continue
            self.stdout.write(f"Training {kind} …")
            began = time.perf_counter()
            try:
                # Recorded as a Job ("<kind>.setup") so the Jobs page lists the demo's own trainings.
                run_recorded(f"{kind}.setup", lambda reporter, train=train: call_with_reporter(train, reporter))
            except UpliftError as error:  # e.g. no campaign with a control group: the rest of the demo still works
                self.stdout.write(f"  {kind}: not trained — {error}")
                continue
            seconds = time.perf_counter() - began
            self.stdout.write(f"  {kind}: v{active_version(kind).version} active ({seconds:.0f} s).")

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
