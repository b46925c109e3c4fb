"""Every model kind, trained through its own service on one small generated data set, gets a complete model card:
every section of the template present and non-empty, per-group tables for churn, CLTV and uplift, the version and
who trained and promoted it; promotion by an admin refreshes the card and the card downloads as markdown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.urls import reverse

from churn.services import train_churn_model
from cltv.services import train_cltv_model
from embeddings.services import train_embeddings_model
from rfm_portal.customers.generator import GeneratorParams, generate, write_outputs
from rfm_portal.customers.services import import_campaign_history, import_transactions
from rfm_portal.mlops import services as registry
from rfm_portal.mlops.model_cards import SECTION_TITLES, registered_kinds
from rfm_portal.mlops.models import ModelVersion
from segmentation.services import train_segmentation
from uplift.pipeline import UpliftConfig
from uplift.services import train_uplift_model

N_CUSTOMERS = 1500
SEED = 8
FAST_UPLIFT = UpliftConfig(forest_trees=40, bootstrap=4, gbm_iter=40, n_jobs=1)
SMALL_EMBEDDINGS = {"dim": 16, "epochs": 4, "seed": 3, "map_method": "pca", "map_sample": 300, "threads": 1}
ALL_KINDS = {"segmentation", "cltv", "churn", "churn_challenger", "uplift", "uplift_challenger", "embeddings"}
WITH_GROUPS = {"cltv", "churn", "churn_challenger", "uplift", "uplift_challenger"}


def sections(card: str) -> dict[str, str]:
    """Heading -> body of each '## ' section."""
    parts = re.split(r"^## (.+)$", card, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1].strip() for i in range(1, len(parts), 2)}


@pytest.fixture
def every_kind_trained(db, admin, settings, tmp_path) -> dict[str, ModelVersion]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.EMBEDDINGS = dict(SMALL_EMBEDDINGS)
    registry.clear_model_cache()
    data = generate(N_CUSTOMERS, seed=SEED, params=GeneratorParams(acquisition_share=1.0))
    files = write_outputs(data, tmp_path / "gen", prefix="gen")
    for path, importer in ((files["transactions"], import_transactions), (files["campaigns"], import_campaign_history)):
        job = importer(Path(path), file_name=Path(path).name)
        assert job.status == "succeeded", job.message
    trained = {"segmentation": train_segmentation(user=admin)}
    champion, challenger = train_churn_model(user=admin)
    trained |= {"churn": champion, "churn_challenger": challenger}
    trained["cltv"] = train_cltv_model(user=admin, unit="W", n_draws=30)
    champion, challenger = train_uplift_model(user=admin, config=FAST_UPLIFT)
    trained |= {"uplift": champion, "uplift_challenger": challenger}
    trained["embeddings"] = train_embeddings_model(user=admin)
    out = {kind: ModelVersion.objects.get(pk=mv.pk) for kind, mv in trained.items()}
    import os
    if os.environ.get("DUMP_CARDS"):
        Path(os.environ["DUMP_CARDS"]).write_text("\n\n=====\n\n".join(mv.model_card for mv in out.values()))
    yield out
    registry.clear_model_cache()


def test_every_kind_gets_a_complete_card_with_groups_and_a_download(every_kind_trained, admin, admin_client,
                                                                     analyst_client):
    assert ALL_KINDS <= set(registered_kinds())
    expected = [heading for _key, heading in SECTION_TITLES]
    for kind, mv in every_kind_trained.items():
        card = mv.model_card
        assert card.startswith("# ") and f" v{mv.version}\n" in card.splitlines()[0] + "\n", (kind, card[:80])
        found = sections(card)
        assert list(found) == expected, (kind, list(found))
        for heading, body in found.items():
            assert body and "(not stated)" not in body, (kind, heading)
        assert f"status **{mv.get_status_display()}**" in card and "by root" in card, kind
        group = found["Performance by group"]
        if kind in WITH_GROUPS:
            perf = mv.metrics["group_performance"]
            assert set(perf["by"]) == {"country", "rfm_segment"}, kind
            for rows in perf["by"].values():
                assert sum(r["n"] for r in rows) == perf["overall"]["n"] > 0, kind
            assert "**By country**" in group and "**By rfm segment**" in group and "Rule:" in group, kind
            assert perf["overall"]["ci_low"] <= perf["overall"]["value"] <= perf["overall"]["ci_high"], kind
        else:
            assert "group_performance" not in mv.metrics and group.startswith("Not "), kind
    # the serving versions say when they were promoted; the challengers that they never served
    assert "Promoted (made active)" in every_kind_trained["churn"].model_card
    assert "Promoted: not yet" in every_kind_trained["churn_challenger"].model_card

    # an admin promoting the challenger: the card is refreshed and names who promoted it
    challenger = every_kind_trained["churn_challenger"]
    response = admin_client.post(reverse("mlops:model-promote", args=[challenger.pk]))
    assert response.status_code == 302
    challenger.refresh_from_db()
    assert challenger.status == ModelVersion.Status.ACTIVE
    assert "status **Active**" in challenger.model_card and "by root" in challenger.model_card.split("Promoted")[1]

    # download as markdown (any logged-in user)
    response = analyst_client.get(reverse("mlops:model-card", args=[challenger.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    disposition = response["Content-Disposition"]
    assert "attachment" in disposition and "churn_challenger-v1.md" in disposition
    assert response.content.decode() == challenger.model_card

    # each predictive app's page shows the per-group section from the stored metrics, flags included
    for app, kind in (("churn", "churn"), ("cltv", "cltv"), ("uplift", "uplift")):
        mv = ModelVersion.objects.get(kind=kind, status=ModelVersion.Status.ACTIVE)
        page = analyst_client.get(reverse(f"{app}:overview"))
        html = page.content.decode()
        assert page.status_code == 200 and "How well it works for whom" in html, app
        flagged = mv.metrics["group_performance"]["flagged"]
        assert f'data-flagged="{len(flagged)}"' in html, app
        for f in flagged:
            assert f"<strong>{f['group']}</strong>".replace("'", "&#x27;") in html, (app, f)
        assert 'data-grouping="country"' in html and 'data-grouping="rfm_segment"' in html, app
        assert reverse("mlops:model-card", args=[mv.pk]) in html, app
