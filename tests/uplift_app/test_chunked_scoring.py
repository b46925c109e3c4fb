"""Uplift scores written in chunks: exactly the rows of one unchunked scoring."""

from __future__ import annotations

import datetime as dt
import math

from rfm_portal.customers.features import build_features
from rfm_portal.mlops.models import ScoringRun
from rfm_portal.mlops.scoring import score_all_customers
from rfm_portal.mlops.services import load_active
from uplift import services
from uplift.models import UpliftScore
from uplift.pipeline import ProfitInputs

FIELDS = ("customer_id", "uplift", "uplift_low", "uplift_high", "baseline", "revenue_uplift", "expected_profit",
          "group", "contact", "scored_at")


def test_chunked_scoring_writes_exactly_the_rows_of_unchunked_scoring(trained):
    champion = trained[0]
    model = load_active("uplift")
    cut = champion.data_cutoff
    profit = ProfitInputs(**champion.metrics["profit_defaults"])
    scored_at = dt.datetime(2025, 1, 2, tzinfo=dt.UTC)
    X = build_features(services.load_transactions(before=cut), services._utc(cut), services.load_customers())
    columns = services.score_columns(model.score(X, profit), scored_at)
    unchunked = sorted(zip(*(columns[f] for f in FIELDS), strict=True))

    run = score_all_customers(champion, {"profit": champion.metrics["profit_defaults"],
                                         "scored_at": scored_at.isoformat()}, chunk_size=131)
    assert run.state == ScoringRun.State.SUCCEEDED and run.chunks_total == 12
    rows = sorted(UpliftScore.objects.filter(model_version=champion).values_list(*FIELDS))
    # The arm models' linear members multiply matrices whose BLAS blocking depends on the row count, so a
    # chunk's floats may differ from the whole frame's in the last bit; everything else is exact.
    assert len(rows) == len(unchunked) == champion.metrics["scored_customers"]
    for got, want in zip(rows, unchunked, strict=True):
        assert all(math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-12) if isinstance(w, float) else g == w
                   for g, w in zip(got, want, strict=True)), (got, want)
