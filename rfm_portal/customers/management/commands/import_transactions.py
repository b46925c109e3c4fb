"""manage.py import_transactions FILE [--skip-invalid] [--map target=Source ...] [--kind ...] [--dayfirst]"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from rfm_portal.customers import importing, services
from rfm_portal.customers.models import ImportJob

SHOWN_ERRORS = 20


class Command(BaseCommand):
    help = (
        "Import transactions (default) or campaign history from a CSV or .xlsx file. Validated and atomic: "
        "any invalid row rejects the whole file unless --skip-invalid; importing the same file twice adds nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file")
        parser.add_argument("--kind", choices=ImportJob.Kind.values, default=ImportJob.Kind.TRANSACTIONS)
        parser.add_argument("--skip-invalid", action="store_true", help="import the valid rows, report the rest")
        parser.add_argument(
            "--map",
            dest="mappings",
            action="append",
            default=[],
            metavar="TARGET=COLUMN",
            help="map a target field to a source column (repeatable), e.g. --map customer_id='Client No'",
        )
        parser.add_argument(
            "--dayfirst", action="store_true", help="read 1/12/2010 as 1 December (default: month first)"
        )

    def handle(self, *args, file: str, kind: str, skip_invalid: bool, mappings: list[str], dayfirst: bool, **options):
        try:
            mapping = importing.parse_mapping(mappings)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        try:
            job = services.import_file(file, kind=kind, mapping=mapping, skip_invalid=skip_invalid, dayfirst=dayfirst)
        except FileNotFoundError:
            raise CommandError(f"No such file: {file}") from None
        for error in job.errors[:SHOWN_ERRORS]:
            self.stderr.write(f"line {error['line']}: {error['reason']}")
        if job.rows_rejected > SHOWN_ERRORS:
            self.stderr.write(f"… {job.rows_rejected - SHOWN_ERRORS:,} more rejected rows (see import {job.pk}).")
        summary = (
            f"Import {job.pk} {job.status}: {job.rows_total:,} rows, {job.rows_inserted:,} new, "
            f"{job.rows_duplicate:,} already present, {job.rows_rejected:,} rejected."
        )
        if job.status != ImportJob.Status.SUCCEEDED:
            raise CommandError(f"{summary} {job.message}")
        self.stdout.write(self.style.SUCCESS(summary))
