"""Train the segmentation model synchronously, printing each step: `manage.py train_segmentation [--k 4]`."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError, CommandParser

from segmentation.pipeline import SegmentationError
from segmentation.services import train_segmentation


class _ConsoleReporter:
    def __init__(self, command: BaseCommand) -> None:
        self.command = command
        self.started = time.perf_counter()

    def report(self, progress: int, message: str = "") -> None:
        elapsed = time.perf_counter() - self.started
        self.command.stdout.write(f"[{progress:3d}% {elapsed:6.1f}s] {message}")


class Command(BaseCommand):
    help = "Compute RFM in the database, score, segment and cluster customers; register and activate the model."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--k", type=int, default=None, help="Number of clusters (default: chosen by silhouette).")
        parser.add_argument(
            "--cutoff", default=None, help="Data cut-off day YYYY-MM-DD (default: day after the last transaction)."
        )

    def handle(self, *args, **options) -> None:
        try:
            mv = train_segmentation(cutoff=options["cutoff"], k=options["k"], reporter=_ConsoleReporter(self))
        except SegmentationError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Segmentation v{mv.version} is active: {mv.metrics['customers']:,} customers, k = {mv.metrics['k']}."
            )
        )
