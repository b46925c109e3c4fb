"""Continuous acquisition: customers keep arriving to the end; those acquired after the send are not in the campaign."""

from __future__ import annotations

import numpy as np
import pandas as pd

from rfm_portal.customers.generator import GeneratorParams, generate


def test_continuous_acquisition_keeps_late_customers_out_of_the_campaign():
    data = generate(2000, 4, params=GeneratorParams(acquisition_share=1.0))
    truth = data.truth
    sent = pd.Timestamp(data.meta["campaign"]["sent_at"])
    acquired = pd.to_datetime(truth["acquired_at"])
    late = acquired >= sent
    assert late.mean() > 0.15  # a quarter of the window comes after the send
    assert acquired.max() > pd.Timestamp(data.meta["end"]) - pd.Timedelta(days=30)  # recent first-time buyers
    in_campaign = set(data.campaigns["customer_id"])
    assert not in_campaign & set(truth.loc[late, "customer_id"])
    assert in_campaign == set(truth.loc[~late, "customer_id"])
    assert truth.loc[late, "true_uplift"].isna().all() and truth.loc[~late, "true_uplift"].notna().all()
    assert data.meta["counts"]["not_in_campaign"] == int(late.sum())
    # the planted effects include customers the offer hurts
    assert (truth["true_uplift"] < 0).sum() > 50 and np.nanmax(truth["true_uplift"]) > 0.1
