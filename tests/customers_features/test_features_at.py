"""Features as of each customer's own cut-off: equal to build_features on data truncated at that cut-off."""

from __future__ import annotations

import pandas as pd
import pandas.testing as pdt

from rfm_portal.customers.features import build_features, build_features_at
from rfm_portal.customers.generator import GeneratorParams, generate
from uplift.synthetic import transactions_frame


def _data():
    data = generate(400, 9, params=GeneratorParams(acquisition_share=1.0))
    return data, transactions_frame(data)


def test_features_at_send_equal_features_from_a_copy_truncated_at_send():
    data, tx = _data()
    sent = pd.Timestamp(data.campaigns["sent_at"].iloc[0], tz="UTC")
    cutoffs = pd.Series(sent, index=data.campaigns["customer_id"].astype(str))
    at = build_features_at(tx, cutoffs)
    # an independent copy holding only what existed before the send: nothing later can leak in
    truncated = tx[tx["invoiced_at"] < sent].copy()
    assert len(truncated) < len(tx)
    expected = build_features(truncated, sent)
    expected = expected.loc[expected.index.isin(cutoffs.index)]
    pdt.assert_frame_equal(at, expected)
    # and the outcome window changes nothing: drop every later transaction and recompute
    pdt.assert_frame_equal(build_features_at(truncated, cutoffs), at)


def test_different_cut_offs_per_customer():
    _, tx = _data()
    ids = sorted(tx["customer_id"].unique())[:60]
    cuts = pd.Series([pd.Timestamp("2024-03-01", tz="UTC") if i % 3 else pd.Timestamp("2024-09-15", tz="UTC")
                      for i in range(len(ids))], index=ids)
    at = build_features_at(tx, cuts)
    for cid in ids[:12]:
        alone = build_features(tx[tx["customer_id"] == cid], cuts[cid])
        if cid in at.index:
            pdt.assert_frame_equal(at.loc[[cid]], alone)
        else:  # no purchase before their cut-off: left out
            assert alone.empty
    assert set(at.index) <= set(ids)
