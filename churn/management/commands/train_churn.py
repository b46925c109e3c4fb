"""Train the churn models synchronously (no Celery): backtest, register, promote, score."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from churn import services


class _Print:
    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def report(self, progress: int, message: str = "") -> None:
        self.command.stdout.write(f"[{progress:3d}%] {message}")


class Command(BaseCommand):
    help = "Train the churn baseline and challenger on the transactions in the database and activate the champion."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--cutoff", default=None, help="Data cut-off (ISO date); default: the day after the last transaction."
        )
        parser.add_argument("--horizon-days", type=int, default=90, help="Churn horizon H in days (default 90).")

    def handle(self, *args, **options) -> None:
        try:
            champion, challenger = services.train_churn_model(
                cutoff=options["cutoff"], horizon_days=options["horizon_days"], reporter=_Print(self)
            )
        except services.ChurnError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(self.style.SUCCESS(
            f"churn v{champion.version} active ({champion.metrics['model_kind']}, "
            f"ROC-AUC {champion.metrics['roc_auc']:.3f}); "
            f"challenger v{challenger.version} ({challenger.metrics['model_kind']}, ROC-AUC "
            f"{challenger.metrics['roc_auc']:.3f}); {champion.metrics['scored_customers']:,} customers scored"
        ))
