"""manage.py train_cltv: train, score and promote a CLTV model synchronously."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cltv import services


class Command(BaseCommand):
    help = (
        "Train the CLTV models on the imported transactions (holdout comparison, Gamma-Gamma), score every "
        "customer and promote the new version. Dates are exclusive cut-offs (YYYY-MM-DD)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--observation-end", help="use transactions before this date (default: all)")
        parser.add_argument("--calibration-end", help="holdout starts here (default: last 25%% of purchase days)")
        parser.add_argument("--unit", choices=["D", "W"], default="W")
        parser.add_argument("--horizon-days", type=float, default=365)
        parser.add_argument("--discount-rate", type=float, default=0.10)
        parser.add_argument("--margin", type=float, default=services.DEFAULT_MARGIN)

    def handle(self, *args, **options) -> None:
        try:
            mv = services.train_cltv_model(
                observation_end=options["observation_end"],
                calibration_end=options["calibration_end"],
                unit=options["unit"],
                horizon_days=options["horizon_days"],
                annual_discount_rate=options["discount_rate"],
                margin=options["margin"],
            )
        except Exception as exc:
            raise CommandError(f"CLTV training failed: {exc}") from exc
        m = mv.metrics
        self.stdout.write(
            self.style.SUCCESS(
                f"CLTV v{mv.version} active: {m['chosen_label']} on {m['n_customers']:,} customers, "
                f"holdout RMSE {m['holdout_rmse']:.3f}, total CLV {m['total_clv']:,.0f}."
            )
        )
