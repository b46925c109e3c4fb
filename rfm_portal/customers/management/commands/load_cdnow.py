"""manage.py load_cdnow [--sample] [--skip-invalid]: the real CDNOW data through the product's import."""

from __future__ import annotations

import os
import tempfile

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfm_portal.customers import cdnow, services
from rfm_portal.customers.models import ImportJob


class Command(BaseCommand):
    help = (
        "Import the CDNOW data shipped with lifetimes (CDNOW_master.txt: 23,570 customers, 69,659 lines; "
        "--sample: the 2,357-customer sample behind the published BG/NBD and Gamma-Gamma fits) through the "
        "ordinary transaction import. Idempotent: loading it again adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sample", action="store_true", help=f"load {cdnow.SAMPLE} (1/10 sample) instead of {cdnow.MASTER}"
        )
        parser.add_argument("--skip-invalid", action="store_true", help="import the valid rows, report the rest")

    def handle(self, *args, sample: bool, skip_invalid: bool, **options) -> None:
        name = cdnow.SAMPLE if sample else cdnow.MASTER
        try:
            source = cdnow.dataset_path(name)
        except FileNotFoundError as exc:
            raise CommandError(str(exc)) from None
        frame = cdnow.to_transactions(cdnow.read_raw(source))
        self.stdout.write(f"Converted {source}: {len(frame):,} lines, {frame['customer_id'].nunique():,} customers.")
        handle, tmp = tempfile.mkstemp(suffix=".csv", prefix="cdnow-")
        os.close(handle)
        try:
            cdnow.write_csv(frame, tmp)
            job = services.import_transactions(tmp, skip_invalid=skip_invalid, file_name=name)
        finally:
            os.unlink(tmp)
        for error in job.errors[:20]:
            self.stderr.write(f"line {error['line']}: {error['reason']}")
        summary = (
            f"Import {job.pk} {job.status}: {job.rows_total:,} rows, {job.rows_inserted:,} new, "
            f"{job.rows_duplicate:,} already present, {job.rows_rejected:,} rejected. {job.message}"
        )
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(summary)
        self.stdout.write(self.style.SUCCESS(summary))
