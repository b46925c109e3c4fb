"""apply_events: one transaction per batch; rows, features, re-scored risk and the risk change, once per event id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from churn.models import ChurnScore
from churn.pipeline import ChurnModelBundle
from churn.services import features_for_customers, load_customers
from cltv.pipeline import score_frame
from cltv.summary import summary_from_transactions
from rfm_portal.customers.features import build_features
from rfm_portal.customers.models import Customer, Transaction
from rfm_portal.mlops.services import load_active
from streaming import services
from streaming.events import parse_event
from streaming.models import LiveRisk, RiskChange, StreamEvent

from .conftest import event

WHEN = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)


def test_an_event_writes_rows_and_a_risk_change_from_the_stored_score(live_db):
    cid = live_db.high_risk[0]
    customer = Customer.objects.get(external_id=cid)
    old = ChurnScore.objects.get(customer=customer, model_version__status="active")
    result = services.apply_events([parse_event(event("e-1", cid, when=WHEN, quantity=3))], entry_ids=["1-0"])
    assert result.applied == ["e-1"] and result.duplicates == []
    rows = Transaction.objects.filter(customer=customer, import_job__isnull=True)
    assert [(r.quantity, float(r.amount), r.is_return) for r in rows] == [(3, 3 * 6.49, False)]
    change = RiskChange.objects.get(event__event_id="e-1")
    assert change.old_probability == pytest.approx(old.probability) and change.old_band == old.risk_band
    # the new risk is exactly the churn model on the features rebuilt as of just after the event
    bundle: ChurnModelBundle = load_active("churn")
    X = features_for_customers([customer.pk], WHEN + timedelta(milliseconds=1))
    assert change.new_probability == pytest.approx(float(bundle.predict_proba(X)[0]))
    assert X["recency_days"].iloc[0] < 1e-6  # the purchase counts
    assert change.new_probability < old.probability  # a purchase lowers the risk of a high-risk customer
    assert 0 < change.new_p_alive <= 1 and change.clv > 0
    live = LiveRisk.objects.get(customer=customer)
    assert (live.probability, live.as_of) == (change.new_probability, WHEN)


def test_a_duplicate_event_id_is_ignored(live_db):
    cid = live_db.high_risk[1]
    first = services.apply_events([parse_event(event("dup-1", cid, when=WHEN))])
    again = services.apply_events([parse_event(event("dup-1", cid, when=WHEN, quantity=9))])
    assert first.applied == ["dup-1"] and again.applied == [] and again.duplicates == ["dup-1"]
    assert StreamEvent.objects.filter(event_id="dup-1").count() == 1
    assert RiskChange.objects.filter(event__event_id="dup-1").count() == 1
    assert Transaction.objects.filter(import_job__isnull=True, customer__external_id=cid).count() == 1


def test_events_of_one_customer_in_a_batch_chain_old_to_new(live_db):
    cid = live_db.high_risk[2]
    later = WHEN + timedelta(days=40)
    result = services.apply_events([
        parse_event(event("b-2", cid, kind="return", when=later, quantity=1)),
        parse_event(event("b-1", cid, when=WHEN, quantity=2)),
    ])
    assert result.applied == ["b-1", "b-2"]  # applied in event time order
    first, second = (RiskChange.objects.get(event__event_id=i) for i in ("b-1", "b-2"))
    assert second.old_probability == pytest.approx(first.new_probability)
    # 40 days of silence then a return: the risk rises again
    assert second.new_probability > first.new_probability
    assert LiveRisk.objects.get(customer__external_id=cid).as_of == later


def test_a_new_customer_is_created_and_scored_without_an_old_risk(live_db):
    result = services.apply_events([parse_event({**event("n-1", "NEW-1", when=WHEN), "country": "France"})])
    assert result.applied == ["n-1"]
    customer = Customer.objects.get(external_id="NEW-1")
    assert customer.country == "France" and customer.first_seen == WHEN
    change = RiskChange.objects.get(event__event_id="n-1")
    assert change.old_probability is None and not change.is_alert and 0 <= change.new_probability <= 1


def test_a_customer_id_as_a_spreadsheet_writes_it_is_the_importers_customer(live_db):
    """"88888.0" is customer 88888, as a CSV import reads it: one customer, scored, whichever way it came."""
    result = services.apply_events([parse_event(event("d-1", "88888.0", when=WHEN)),
                                    parse_event(event("d-2", "88888", when=WHEN + timedelta(days=2)))])
    assert result.applied == ["d-1", "d-2"]
    customer = Customer.objects.get(external_id="88888")
    assert not Customer.objects.filter(external_id="88888.0").exists()
    assert RiskChange.objects.filter(customer=customer).count() == 2
    assert Transaction.objects.filter(customer=customer, import_job__isnull=True).count() == 2


def test_an_alert_is_a_crossing_into_high_or_a_sharp_rise(settings):
    settings.STREAM = {**settings.STREAM, "SHARP_RISE": 0.15}
    assert services.classify(0.5, "medium", 0.62, "high") == "crossed into high risk"
    assert services.classify(0.1, "low", 0.3, "low") == "risk up 20 points"
    assert services.classify(0.7, "high", 0.8, "high") == ""
    assert services.classify(None, "", 0.9, "high") == ""
    assert services.classify(0.5, "medium", 0.3, "low") == ""


def test_a_failing_batch_writes_nothing(live_db, monkeypatch):
    cid = live_db.high_risk[3]
    monkeypatch.setattr(services, "_rescore", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("scoring broke")))
    with pytest.raises(RuntimeError):
        services.apply_events([parse_event(event("f-1", cid, when=WHEN))])
    assert not StreamEvent.objects.filter(event_id="f-1").exists()
    assert not Transaction.objects.filter(import_job__isnull=True).exists()


def test_per_event_features_equal_building_them_one_event_at_a_time(live_db):
    """The batch's shifted single build_features call gives each event's own point-in-time features."""
    ids = live_db.high_risk[4:7]
    events = [parse_event(event(f"s-{i}", cid, when=WHEN + timedelta(days=9 * i, hours=i))) for i, cid in
              enumerate(ids)]
    customer_ids, _ = services._write_transactions(events)
    pks = [customer_ids[c] for c in ids]
    batch = services._per_event_features(events, pks)
    for k, (ev, pk) in enumerate(zip(events, pks, strict=True)):
        alone = features_for_customers([pk], ev.occurred_at + timedelta(milliseconds=1))
        np.testing.assert_allclose(batch.loc[k, list(alone.columns.drop("country"))].to_numpy(dtype=float),
                                   alone.iloc[0][list(alone.columns.drop("country"))].to_numpy(dtype=float),
                                   rtol=1e-9, atol=1e-6)


def _features_by_merges(events, pks, tx):
    """The previous implementation of ``services._per_event_features`` (pandas merges), as the reference."""
    customers = load_customers(pks)
    cutoffs = pd.to_datetime([ev.occurred_at for ev in events], utc=True) + services.AFTER_EVENT
    common = cutoffs.max()
    ev_frame = pd.DataFrame({"customer_id": np.asarray(pks, dtype=np.int64), "key": np.arange(len(events)),
                             "shift": (common - cutoffs).to_numpy(), "cutoff": cutoffs})
    tx = tx.assign(customer_id=tx["customer_id"].astype(np.int64), invoice=tx["invoice"].astype(object),
                   category=tx["category"].astype(object))
    rows = tx.merge(ev_frame, on="customer_id", how="inner")
    rows = rows[rows["invoiced_at"] < rows["cutoff"]]
    rows = rows.assign(invoiced_at=rows["invoiced_at"] + rows["shift"], customer_id=rows["key"])
    cust = customers.merge(ev_frame, on="customer_id", how="inner")
    cust = cust.assign(first_seen=cust["first_seen"] + cust["shift"], customer_id=cust["key"])
    return build_features(rows[["customer_id", "invoice", "invoiced_at", "amount", "is_return", "category"]],
                          common, cust[["customer_id", "country", "first_seen"]])


def _cltv_by_merges(bundle, events, pks, days):
    """The previous implementation of ``services._per_event_cltv`` (shifted days, score_frame), as the reference."""
    end_days = pd.to_datetime([ev.occurred_at.date() for ev in events])
    common = end_days.max()
    ev_frame = pd.DataFrame({"customer_id": np.asarray(pks, dtype=np.int64), "key": np.arange(len(events)),
                             "shift": (common - end_days).to_numpy(), "end": end_days})
    rows = days.assign(customer_id=days["customer_id"].astype(np.int64)).merge(ev_frame, on="customer_id")
    rows = rows[rows["invoiced_at"] <= rows["end"]]
    rows = rows.assign(invoiced_at=rows["invoiced_at"] + rows["shift"], customer_id=rows["key"])
    summary = summary_from_transactions(rows[["customer_id", "invoiced_at", "amount"]], common, unit=bundle.unit)
    return score_frame(bundle, summary[["frequency", "recency", "T", "monetary_value"]],
                       with_uncertainty=False)[["p_alive", "clv"]]


def test_per_event_features_and_cltv_equal_the_previous_pandas_implementation_exactly(live_db):
    """The numpy selection of each event's history gives bit for bit what the pandas merges gave."""
    a, b, c = live_db.high_risk[7:10]
    specs = [(a, "purchase", WHEN), (b, "purchase", WHEN + timedelta(days=3)), (a, "return", WHEN + timedelta(days=20)),
             (c, "purchase", WHEN - timedelta(days=200, hours=5)), (a, "purchase", WHEN + timedelta(days=20, hours=1)),
             (b, "purchase", WHEN + timedelta(days=3)), ("NEW-x", "purchase", WHEN + timedelta(days=1))]
    events = [parse_event(event(f"x-{i}", cid, kind=kind, when=when, quantity=i + 1))
              for i, (cid, kind, when) in enumerate(specs)]
    customer_ids, _ = services._write_transactions(events)
    pks = [customer_ids[cid] for cid, _, _ in specs]
    history = services._history(pks)
    got = services._per_event_features(events, pks, history)
    expected = _features_by_merges(events, pks, history)
    assert len(got) == len(events)
    pd.testing.assert_frame_equal(got, expected, check_exact=True, check_index_type=False)
    bundle = load_active("cltv")
    days = services._days_from(history)
    got = services._per_event_cltv(bundle, events, pks, days)
    expected = _cltv_by_merges(bundle, events, pks, days)
    assert len(got) == len(events)
    np.testing.assert_array_equal(got.index.to_numpy(), expected.index.to_numpy())
    np.testing.assert_array_equal(got.to_numpy(dtype=float), expected.to_numpy(dtype=float))


def test_one_history_read_gives_the_same_features_and_days_as_the_loaders(live_db):
    """The batch's single history read matches churn's load_transactions and CLTV's transaction_days."""
    from churn.services import load_transactions
    from cltv.services import transaction_days

    pks = list(Customer.objects.order_by("pk").values_list("pk", flat=True)[:40])
    mine, theirs = services._history(pks), load_transactions(pks)
    key = ["customer_id", "invoiced_at", "invoice", "amount"]
    # Same values; the id's integer width (int64 here, int32 from the COPY loader) is not part of the contract.
    mine = mine.assign(invoice=mine["invoice"].astype(str), category=mine["category"].astype(str),
                       customer_id=mine["customer_id"].astype("int64"))
    theirs = theirs.assign(invoice=theirs["invoice"].astype(str), category=theirs["category"].astype(str),
                           customer_id=theirs["customer_id"].astype("int64"))
    pd.testing.assert_frame_equal(mine.sort_values(key).reset_index(drop=True),
                                  theirs.sort_values(key).reset_index(drop=True), check_like=True)
    days, expected = services._days_from(mine), transaction_days(customer_ids=pks)
    key = ["customer_id", "invoiced_at", "amount"]
    pd.testing.assert_frame_equal(days.sort_values(key).reset_index(drop=True),
                                  expected.sort_values(key).reset_index(drop=True), check_dtype=False)
