"""A Kafka-style event producer for demos and load tests (``manage.py simulate_stream``).

Consistent with the sample generator (``customers.generator``): the same catalogue (categories,
products, prices and within-category popularity), the same purchase, spend and basket process,
and returns as in the generator (part of one line of an earlier purchase, ``return_rate`` of
invoices). Existing customers buy at their BG/NBD posterior-mean rate under the generator's
priors, E[λ | x, T] = (r + x) / (α + T), with spend drawn from their Gamma-Gamma posterior mean and
categories from their own purchase mix (smoothed towards uniform); new customers arrive at
``new_share`` of events and draw λ, ν and taste from the generator's priors. Every event carries
a producer-assigned id ``<run>-<n>``.

Time: a simulated clock starts at the last imported transaction and runs ``speed`` times faster
than the wall clock (default one hour a second), never past the present.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd

from rfm_portal.customers.generator import (
    CATEGORIES,
    COUNTRIES,
    SAMPLE_SEED,
    GeneratorParams,
    cluster_preferences,
    make_products,
)

from .events import Event, Line, default_invoice

RETURN_AFTER = timedelta(days=1)


@dataclass
class CustomerHistory:
    """What the producer knows of existing customers (from the database)."""

    external_ids: np.ndarray  # str
    countries: np.ndarray  # str
    invoices: np.ndarray  # purchase invoices so far
    first_day: np.ndarray  # days since first purchase, as of the clock start
    gross: np.ndarray  # gross purchase value
    category_counts: np.ndarray  # customers × len(CATEGORIES) purchase lines per category


class Simulator:
    def __init__(self, history: CustomerHistory, clock_start: datetime, *, speed: float = 3600.0,
                 new_share: float = 0.03, return_rate: float | None = None, seed: int | None = None,
                 params: GeneratorParams | None = None) -> None:
        self.params = params or GeneratorParams()
        self.rng = np.random.default_rng(seed)
        self.run = uuid.uuid4().hex[:8]
        self.n = 0
        self.speed, self.new_share = speed, new_share
        self.return_rate = self.params.return_rate if return_rate is None else return_rate
        self.clock_start = clock_start
        self.wall_start = datetime.now(UTC)
        # the generator's catalogue: make_products is its first draw from the sample seed's generator
        self.products = make_products(np.random.default_rng(SAMPLE_SEED))
        cat_codes = self.products["category"].map({c: i for i, c in enumerate(CATEGORIES)}).to_numpy()
        self.ladder = cat_codes + self.products.groupby("category", sort=False)["popularity"].cumsum().to_numpy()
        self.history = history
        p = self.params
        x, T = history.invoices.astype(float), np.maximum(history.first_day, 1.0)
        self.rate = (p.r + x) / (p.alpha + T)  # E[λ | x, T], BG/NBD / Poisson-Gamma posterior mean
        # E[p/ν | spends]: Gamma-Gamma posterior mean of a customer's mean spend
        self.mean_spend = p.p * (p.gamma + history.gross) / np.maximum(p.p * x + p.q - 1.0, 1e-9)
        weights = self.rate / self.rate.sum() if len(self.rate) else np.array([])
        self.pick_cdf = np.cumsum(weights)
        taste = history.category_counts + 1.5  # counts smoothed towards uniform
        self.taste_cdf = np.cumsum(taste / taste.sum(axis=1, keepdims=True), axis=1) if len(taste) else taste
        self.recent: list[tuple[str, str, str, str, Line, datetime]] = []  # purchases a return may undo

    def now(self) -> datetime:
        wall = datetime.now(UTC)
        sim = self.clock_start + (wall - self.wall_start) * self.speed
        return min(sim, wall)

    def _next_id(self) -> str:
        self.n += 1
        return f"sim-{self.run}-{self.n:09d}"

    def _basket(self, spend: float, taste_cdf: np.ndarray) -> list[Line]:
        """The generator's basket: 1 + Poisson lines, category by taste, product by popularity,
        the spend split Dirichlet(2) and quantities rounded stochastically."""
        rng, p = self.rng, self.params
        n_lines = 1 + min(int(rng.poisson(min(spend / p.spend_per_line, 6.0))), 9)
        category = np.minimum((rng.random(n_lines)[:, None] > taste_cdf).sum(axis=1), len(CATEGORIES) - 1)
        product = np.minimum(np.searchsorted(self.ladder, category + rng.random(n_lines)), len(self.products) - 1)
        price = self.products["unit_price"].to_numpy()[product]
        share = rng.gamma(2.0, 1.0, n_lines)
        quantity = np.floor(spend * share / share.sum() / price + rng.random(n_lines)).astype(int)
        if quantity.sum() == 0:
            quantity[0] = 1
        rows = self.products.iloc[product]
        return [Line(sku, desc, cat, int(q), Decimal(f"{pr:.2f}"))
                for sku, desc, cat, q, pr in zip(rows["sku"], rows["description"], rows["category"], quantity, price,
                                                 strict=True) if q > 0]

    def events(self, n: int) -> list[Event]:
        """The next ``n`` events at the simulated clock."""
        out: list[Event] = []
        when = self.now()
        prefs = cluster_preferences()
        for _ in range(n):
            if self.rng.random() < self.return_rate and self._returnable(when):
                out.append(self._return(when))
                continue
            if not len(self.pick_cdf) or self.rng.random() < self.new_share:
                cid = f"N{self.run}{self.n + 1:07d}"
                weights = np.array([w for _, w in COUNTRIES])
                country = COUNTRIES[int(self.rng.choice(len(COUNTRIES), p=weights / weights.sum()))][0]
                nu = self.rng.gamma(self.params.q, 1.0 / self.params.gamma)
                spend = self.rng.gamma(self.params.p, 1.0 / nu)
                cluster = self.rng.integers(len(prefs))
                taste = self.rng.gamma(self.params.taste_concentration * prefs[cluster])
                taste_cdf = np.cumsum(taste / taste.sum())
            else:
                i = min(int(np.searchsorted(self.pick_cdf, self.rng.random())), len(self.pick_cdf) - 1)
                cid, country = str(self.history.external_ids[i]), str(self.history.countries[i])
                spend = self.rng.gamma(self.params.p, self.mean_spend[i] / self.params.p)
                taste_cdf = self.taste_cdf[i]
            event_id = self._next_id()
            lines = self._basket(float(spend), taste_cdf)
            invoice = default_invoice(event_id, "purchase")
            out.append(Event(event_id, "purchase", cid, when, country, invoice, tuple(lines)))
            pick = lines[int(self.rng.integers(len(lines)))]
            self.recent.append((cid, country, invoice, event_id, pick, when))
            del self.recent[: max(len(self.recent) - 5000, 0)]
        return out

    def _returnable(self, when: datetime) -> int:
        """How many remembered purchases are at least a day old (the generator returns 1–21 days later)."""
        return sum(1 for row in self.recent if when - row[5] >= RETURN_AFTER)

    def _return(self, when: datetime) -> Event:
        """Part of one line of an earlier simulated purchase, at least a day old (the generator's returns)."""
        old = [i for i, row in enumerate(self.recent) if when - row[5] >= RETURN_AFTER]
        k = old[int(self.rng.integers(len(old)))]
        cid, country, _invoice, _eid, line, _at = self.recent.pop(k)
        qty = 1 + int(np.floor(self.rng.random() * line.quantity))
        event_id = self._next_id()
        return Event(event_id, "return", cid, when, country, default_invoice(event_id, "return"),
                     (Line(line.sku, line.description, line.category, min(qty, line.quantity), line.unit_price),))


def load_history() -> tuple[CustomerHistory, datetime]:
    """Existing customers' purchase history (one aggregate query each) and the clock start."""
    from django.db.models import Count, Max, Min, Sum

    from rfm_portal.customers.models import Customer, Transaction

    purchases = Transaction.objects.filter(is_return=False)
    last = Transaction.objects.aggregate(last=Max("invoiced_at"))["last"]
    clock_start = last + timedelta(seconds=1) if last else datetime.now(UTC) - timedelta(days=1)
    per = pd.DataFrame.from_records(
        purchases.values("customer_id").annotate(inv=Count("invoice", distinct=True), first=Min("invoiced_at"),
                                                 gross=Sum("amount")).values_list("customer_id", "inv", "first",
                                                                                    "gross").order_by(),
        columns=["pk", "invoices", "first", "gross"])
    cust = pd.DataFrame.from_records(Customer.objects.values_list("pk", "external_id", "country").order_by("pk"),
                                     columns=["pk", "external_id", "country"])
    frame = cust.merge(per, on="pk", how="inner")
    cats = pd.DataFrame.from_records(
        purchases.values("customer_id", "product__category").annotate(n=Count("id"))
        .values_list("customer_id", "product__category", "n").order_by(), columns=["pk", "category", "n"])
    counts = np.zeros((len(frame), len(CATEGORIES)))
    if len(frame) and len(cats):
        row = pd.Series(np.arange(len(frame)), index=frame["pk"])
        cats = cats[cats["category"].isin(CATEGORIES) & cats["pk"].isin(row.index)]
        np.add.at(counts, (row.loc[cats["pk"]].to_numpy(), cats["category"].map(CATEGORIES.index).to_numpy()),
                  cats["n"].to_numpy(dtype=float))
    first = pd.to_datetime(frame["first"], utc=True) if len(frame) else pd.Series([], dtype="datetime64[ns, UTC]")
    first_day = ((pd.Timestamp(clock_start) - first).dt.total_seconds() / 86400).to_numpy(dtype=float)
    history = CustomerHistory(
        external_ids=frame["external_id"].to_numpy(dtype=object), countries=frame["country"].to_numpy(dtype=object),
        invoices=frame["invoices"].to_numpy(dtype=float), first_day=first_day,
        gross=frame["gross"].astype(float).to_numpy(), category_counts=counts)
    return history, clock_start


def restrict(history: CustomerHistory, external_ids: list[str]) -> CustomerHistory:
    """Only these customers (``simulate_stream --customers``)."""
    keep = np.isin(history.external_ids, np.asarray(external_ids, dtype=object))
    return CustomerHistory(history.external_ids[keep], history.countries[keep], history.invoices[keep],
                           history.first_day[keep], history.gross[keep], history.category_counts[keep])
