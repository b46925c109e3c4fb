"""MODELS_USE_COUNTRY: off by default (no country input); on, the uplift model learns one-hot country columns and
serves customers from their plain ``country`` field."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfm_portal.customers.models import Customer
from rfm_portal.mlops.services import load_active
from uplift import services
from uplift.pipeline import common_countries, with_country_columns

from .conftest import FAST


def test_country_columns_by_hand():
    X = pd.DataFrame({"country": ["France", "Spain", None, "France"], "x": [1, 2, 3, 4]})
    out = with_country_columns(X, ["France", "Spain"])
    assert out["country=France"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert out["country=Spain"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert with_country_columns(X.drop(columns="country"), ["France"])["country=France"].tolist() == [0.0] * 4
    many = pd.Series(["A"] * 150 + ["B"] * 2 + [""] * 10)
    assert common_countries(many, min_share=0.01) == ["A", "B"]
    assert common_countries(many, min_share=0.05) == ["A"]


def test_default_is_off(settings):
    assert settings.MODELS_USE_COUNTRY is False


def test_on_the_model_uses_country_and_scores_from_the_plain_field(generated, admin, settings):
    settings.MODELS_USE_COUNTRY = True
    champion, *_ = services.train_uplift_model(user=admin, config=FAST)
    assert champion.params["use_country"] is True
    model = load_active("uplift")
    country_features = [f for f in model.features if f.startswith("country=")]
    assert country_features  # the generated customers live in several countries
    pks = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[:50])
    X = services.features_for_customers(pks, pd.Timestamp(champion.data_cutoff))
    assert "country" in X.columns and not any(c.startswith("country=") for c in X.columns)
    plain = model.score(X)
    explicit = model.score(with_country_columns(X, [f.split("=", 1)[1] for f in country_features]))
    assert np.allclose(plain["uplift"], explicit["uplift"])
