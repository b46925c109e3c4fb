"""manage.py generate_sample [--customers N] [--seed S] [--out DIR] [--import]"""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfm_portal.customers import generator, services
from rfm_portal.customers.models import ImportJob


class Command(BaseCommand):
    help = (
        "Generate seeded retail data with ground truth: sample.csv (transactions), sample_campaigns.csv "
        "(a randomised past campaign), sample_truth.csv (latent parameters, for evaluation only) and "
        "sample_meta.json. The defaults reproduce the committed data/ files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--customers", type=int, default=generator.SAMPLE_CUSTOMERS)
        parser.add_argument("--seed", type=int, default=generator.SAMPLE_SEED)
        parser.add_argument("--start", type=date.fromisoformat, default=generator.SAMPLE_START, help="YYYY-MM-DD")
        parser.add_argument(
            "--end", type=date.fromisoformat, default=generator.SAMPLE_END, help="last day of data, YYYY-MM-DD"
        )
        parser.add_argument("--out", default=None, help="output directory (default: the project's data/)")
        parser.add_argument(
            "--continuous-acquisition",
            action="store_true",
            help="new customers keep arriving to the end of the window (those acquired after the campaign are "
            "not in it); default: all acquired in the first two thirds, as in the committed sample",
        )
        parser.add_argument(
            "--import",
            dest="do_import",
            action="store_true",
            help="also import the transactions and campaign files (never the truth) into the database",
        )

    def handle(self, *args, customers: int, seed: int, start: date, end: date, out, do_import: bool, **options):
        params = generator.GeneratorParams(acquisition_share=1.0) if options.get("continuous_acquisition") else None
        # call_command(start="2024-01-01") passes the string through without argparse's conversion.
        start, end = (value if isinstance(value, date) else date.fromisoformat(value) for value in (start, end))
        if customers < 1:
            raise CommandError("--customers must be at least 1.")
        if end <= start:
            raise CommandError("--end must be after --start.")
        began = time.perf_counter()
        try:
            data = generator.generate(customers, seed, start=start, end=end, params=params)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        paths = generator.write_outputs(data, Path(out) if out else settings.DATA_DIR)
        counts = data.meta["counts"]
        self.stdout.write(
            f"Generated {customers:,} customers (seed {seed}) in {time.perf_counter() - began:.1f} s: "
            f"{counts['transaction_lines']:,} transaction lines, {counts['invoices']:,} invoices, "
            f"{counts['treated']:,} treated."
        )
        for path in paths.values():
            self.stdout.write(f"  {path} ({path.stat().st_size / 1e6:.2f} MB)")
        if not do_import:
            return
        jobs = [
            services.import_transactions(paths["transactions"], file_name=paths["transactions"].name),
            services.import_campaign_history(paths["campaigns"], file_name=paths["campaigns"].name),
        ]
        for job in jobs:
            line = (
                f"Import {job.pk} {job.file_name} {job.status}: "
                f"{job.rows_inserted:,} new, {job.rows_duplicate:,} already present."
            )
            if job.status != ImportJob.Status.SUCCEEDED:
                raise CommandError(f"{line} {job.message}")
            self.stdout.write(self.style.SUCCESS(line))
