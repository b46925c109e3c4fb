"""A tiny model kind for the batch-scoring tests: its "model" is a number in the artifact, its rows ChurnScore rows.

Imported by the test process and by real worker processes (``--include``), so both know the scorer.
A customer whose external id starts with ``fail`` makes its chunk fail; one starting with ``slow``
makes its chunk take a while (to watch workers share the chunks); one starting with ``hang`` makes the
chunk write a row of its own and then hang (to kill the process half-way through the chunk).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from churn.models import ChurnScore
from rfm_portal.customers.models import Customer
from rfm_portal.mlops.models import ModelVersion
from rfm_portal.mlops.scoring import ChunkScorer, ScoredChunk, register_scorer
from rfm_portal.mlops.services import complete_model_version, start_model_version, write_artifact

KIND = "tests_scoring"
SLOW_SECONDS = 0.3
HANG_SECONDS = 120


def expected_probability(pk: int, weight: float) -> float:
    return (pk * weight) % 1.0


def score(mv: ModelVersion, artifact: dict[str, Any], customer_pks: list[int], params: dict[str, Any]) -> ScoredChunk:
    external = dict(Customer.objects.filter(pk__in=customer_pks).values_list("pk", "external_id"))
    if any(external[pk].startswith("fail") for pk in customer_pks):
        raise ValueError("a customer this model cannot score")
    if any(external[pk].startswith("slow") for pk in customer_pks):
        time.sleep(SLOW_SECONDS)
    if any(external[pk].startswith("hang") for pk in customer_pks):
        # half-way: a row written in the chunk's transaction, then never finishing
        ChurnScore.objects.create(model_version=mv, customer_id=customer_pks[0], probability=0.5, risk_band="low",
                                  scored_at=dt.datetime.fromisoformat(params["scored_at"]))
        print("hanging", flush=True)
        time.sleep(HANG_SECONDS)
    scored_at = dt.datetime.fromisoformat(params["scored_at"])
    return ScoredChunk(
        {
            "customer_id": customer_pks,
            "probability": [expected_probability(pk, artifact["weight"]) for pk in customer_pks],
            "risk_band": ["low"] * len(customer_pks),
            "top_contributions": [[{"feature": "pk", "contribution": pk / 7}] for pk in customer_pks],
            "features": [{"pk": float(pk), "name": external[pk]} for pk in customer_pks],
            "scored_at": [scored_at] * len(customer_pks),
        },
        {"customers": len(customer_pks)},
    )


register_scorer(ChunkScorer(kind=KIND, score_model=ChurnScore, score=score))


def ready_version(weight: float = 0.618) -> ModelVersion:
    mv = start_model_version(KIND, {"weight": weight})
    path, _sha = write_artifact(KIND, mv.version, {"weight": weight})
    return complete_model_version(mv, {"weight": weight}, path)
