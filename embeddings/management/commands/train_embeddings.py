"""Train Customer2Vec synchronously (no Celery): vectors, index, map; register and promote."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from embeddings import services


class _Print:
    def __init__(self, command: BaseCommand) -> None:
        self.command = command

    def report(self, progress: int, message: str = "") -> None:
        self.command.stdout.write(f"[{progress:3d}%] {message}")


class Command(BaseCommand):
    help = "Train the Customer2Vec lookalike model on the purchases in the database and activate it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--epochs", type=int, default=None, help="Epochs (default: settings.EMBEDDINGS).")
        parser.add_argument("--dim", type=int, default=None, help="Vector dimension (default: settings.EMBEDDINGS).")
        parser.add_argument("--seed", type=int, default=None, help="Random seed (same seed, same vectors).")
        parser.add_argument("--map-method", choices=("pca", "tsne"), default=None, help="2-D map of the explorer.")
        parser.add_argument(
            "--truth", default=None,
            help="A generator truth CSV (e.g. data/sample_truth.csv): score neighbours against the true taste "
            "clusters and keep the result in the model's metrics. Evaluation only; never used for training.",
        )

    def handle(self, *args, **options) -> None:
        try:
            mv = services.train_embeddings_model(
                reporter=_Print(self), truth_path=options["truth"], epochs=options["epochs"], dim=options["dim"],
                seed=options["seed"], map_method=options["map_method"],
            )
        except services.EmbeddingsError as error:
            raise CommandError(str(error)) from error
        m = mv.metrics
        self.stdout.write(self.style.SUCCESS(
            f"embeddings v{mv.version} active: {m['n_customers']:,} customers, {m['train_seconds']:.1f} s, "
            f"{m['index_kind']} index recall@10 {m['index_recall_at_10']:.3f}"
        ))
        taste = m.get("taste_check") or {}
        if "purity_at_10" in taste:
            self.stdout.write(f"taste purity@10 {taste['purity_at_10']:.3f} (RFM {taste['purity_at_10_rfm']:.3f}, "
                              f"chance {taste['purity_chance']:.3f}); seed-holdout recall "
                              f"{taste['holdout_recall_mean']:.3f} (RFM {taste['holdout_recall_mean_rfm']:.3f})")
