"""Train the uplift learners synchronously (no Celery): check, fit, compare, register, promote, score."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from uplift import services


class _Print:
    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def report(self, progress: int, message: str = "") -> None:
        self.command.stdout.write(f"[{progress:3d}%] {message}")


class Command(BaseCommand):
    help = "Train the causal forest and the T-learner on a past campaign and activate the one with the higher Qini."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--campaign", default=None,
                            help="Campaign name (default: the latest campaign with a contacted and a control group).")

    def handle(self, *args, **options) -> None:
        try:
            versions = services.train_uplift_model(campaign=options["campaign"], reporter=_Print(self))
        except services.UpliftError as error:
            raise CommandError(str(error)) from error
        champion = versions[0]
        m = champion.metrics
        other = f"; challenger v{versions[1].version} ({versions[1].metrics['learner']}, Qini " \
                f"{versions[1].metrics['qini']:.4f})" if len(versions) > 1 else ""
        self.stdout.write(self.style.SUCCESS(
            f"uplift v{champion.version} active ({m['learner']}, held-out Qini {m['qini']:.4f}){other}; "
            f"{m['scored_customers']:,} customers scored"))
