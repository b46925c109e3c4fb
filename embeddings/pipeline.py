"""Customer2Vec: product and customer embeddings from baskets, fold-in, FAISS search. No Django.

The model (Barkan & Koenigstein's item2vec plus Le & Mikolov's PV-DBOW, trained jointly):

* **Products** have an input vector u_p and an output vector v_p. Within a basket (one invoice),
  every ordered pair of distinct products (a, b) is a positive pair: skip-gram with negative
  sampling maximises log σ(u_a·v_b) + Σ_neg log σ(−u_a·v_n), negatives n drawn from the
  unigram distribution raised to 0.75.
* **Customers** have a vector c_i that predicts the products they bought, document-vector style,
  against the same output vectors: log σ(c_i·v_p) + Σ_neg log σ(−c_i·v_n), plus a small L2
  penalty on c_i (customers with one purchase otherwise drift to any length).
* **Fold-in** for a customer the model has not seen: the same customer objective with every
  product vector frozen, the negative term replaced by its expectation over the noise
  distribution (exact, deterministic), minimised for c alone.
* **Search**: vectors are L2-normalised and searched by inner product (= cosine). Exact
  (``IndexFlatIP``) below a size threshold, HNSW above it; recall@10 of the approximate index
  against exact search is measured on a sample at build time.

Training is deterministic for a fixed seed: torch's generator is seeded, batches are drawn
from a seeded permutation, and the thread count is fixed for the duration of the fit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import faiss
import numpy as np
import pandas as pd
import torch

ProgressFn = Callable[[int, int, float], None]  # (epoch, epochs, loss)


@dataclass(frozen=True)
class EmbeddingConfig:
    dim: int = 32
    epochs: int = 15
    negatives: int = 5
    batch_size: int = 4096
    learning_rate: float = 0.02
    customer_l2: float = 1e-3  # L2 penalty on customer vectors (also used at fold-in)
    max_basket_pairs: int = 30  # ordered pairs kept per basket (big baskets are subsampled)
    seed: int = 7
    threads: int = 1
    exact_index_max: int = 50_000  # up to this many vectors: exact search; above: HNSW
    # above this many vectors: IVF-Flat (builds in seconds at 1M, HNSW in ≈ 6 min; both reach the
    # recall target, docs/benchmarks.md "FAISS at 1,000,000 vectors")
    ivf_index_min: int = 300_000
    ivf_nprobe: int = 8
    # At most this many customer–product lines are visited in all (epochs are cut to fit, never below
    # min_epochs): training time stops growing with the number of customers × epochs.
    max_line_passes: int = 15_000_000
    min_epochs: int = 3
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 64
    target_recall: float = 0.95
    recall_queries: int = 500
    map_method: str = "pca"  # "pca" or "tsne"
    map_sample: int = 2000
    quality_sample: int = 2000


@dataclass
class Baskets:
    """Purchases encoded as integer codes.

    ``lines``: one row per (customer, invoice, product) with columns ``customer`` (code),
    ``basket`` (code) and ``product`` (code). ``customer_ids`` / ``product_ids`` map codes back
    to the caller's ids; ``product_categories`` gives each product's category name.
    """

    lines: pd.DataFrame
    customer_ids: np.ndarray
    product_ids: np.ndarray
    product_categories: np.ndarray
    categories: list[str]


def encode_baskets(frame: pd.DataFrame) -> Baskets:
    """Encode purchase lines (columns customer_id, invoice, product_id, category) as codes.

    Returns are the caller's business: pass purchase lines only. Duplicate (invoice, product)
    lines count once.
    """
    required = {"customer_id", "invoice", "product_id", "category"}
    missing = required - set(frame.columns)
    if missing:
        raise ValueError(f"missing columns: {sorted(missing)}")
    if frame.empty:
        raise ValueError("no purchases to learn from")
    frame = frame.drop_duplicates(["customer_id", "invoice", "product_id"])
    cust_codes, customer_ids = pd.factorize(frame["customer_id"], sort=True)
    prod_codes, product_ids = pd.factorize(frame["product_id"], sort=True)
    basket_codes, _ = pd.factorize(frame["customer_id"].astype(str) + "\x1f" + frame["invoice"].astype(str))
    category = frame["category"].fillna("").astype(str).replace("", "Uncategorised").to_numpy()
    product_categories = np.empty(len(product_ids), dtype=object)
    product_categories[prod_codes] = category
    categories = sorted(set(product_categories.tolist()))
    lines = pd.DataFrame(
        {"customer": cust_codes.astype(np.int64), "basket": basket_codes.astype(np.int64),
         "product": prod_codes.astype(np.int64)}
    )
    return Baskets(lines, np.asarray(customer_ids), np.asarray(product_ids), product_categories, categories)


def basket_pairs(lines: pd.DataFrame, max_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered (product, context product) pairs of distinct products sharing a basket, as an (n, 2) array.

    Baskets with more than ``max_pairs`` pairs keep a random ``max_pairs`` of them, so a few
    huge invoices cannot dominate the product vectors.
    """
    lines = lines.sort_values(["basket", "product"], kind="stable")
    basket = lines["basket"].to_numpy()
    product = lines["product"].to_numpy()
    starts = np.flatnonzero(np.r_[True, basket[1:] != basket[:-1]])
    sizes = np.diff(np.r_[starts, len(basket)])
    out: list[np.ndarray] = []
    for size in np.unique(sizes[sizes > 1]):
        group = starts[sizes == size]
        idx = group[:, None] + np.arange(size)[None, :]
        items = product[idx]  # (g, size)
        a, b = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
        keep = a != b
        pa, pb = items[:, a[keep]], items[:, b[keep]]  # (g, size*(size-1))
        n_pairs = pa.shape[1]
        if n_pairs > max_pairs:
            choice = np.argsort(rng.random((len(group), n_pairs)), axis=1)[:, :max_pairs]
            pa = np.take_along_axis(pa, choice, axis=1)
            pb = np.take_along_axis(pb, choice, axis=1)
        out.append(np.stack([pa.ravel(), pb.ravel()], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return np.concatenate(out).astype(np.int64)


def noise_distribution(product_codes: np.ndarray, n_products: int) -> np.ndarray:
    counts = np.bincount(product_codes, minlength=n_products).astype(np.float64)
    weights = np.power(counts + 1e-12, 0.75)
    return weights / weights.sum()


def category_mix(customer_codes: np.ndarray, product_codes: np.ndarray, product_categories: np.ndarray,
                 categories: list[str], n_customers: int) -> np.ndarray:
    """Each customer's share of purchase lines per category, (n_customers, n_categories) float32."""
    cat_index = {c: i for i, c in enumerate(categories)}
    line_cat = np.array([cat_index[c] for c in product_categories], dtype=np.int64)[product_codes]
    counts = np.zeros((n_customers, len(categories)), dtype=np.float64)
    np.add.at(counts, (customer_codes, line_cat), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    return (counts / np.maximum(totals, 1.0)).astype(np.float32)


@dataclass
class TrainedEmbeddings:
    customer_vectors: np.ndarray  # (n_customers, dim) float32, raw (not normalised)
    product_in: np.ndarray  # (n_products, dim): item2vec input vectors (product similarity)
    product_out: np.ndarray  # (n_products, dim): output vectors (what customer vectors predict)
    noise: np.ndarray  # (n_products,) negative-sampling distribution
    loss_curve: list[dict[str, float]]
    seconds: float
    n_basket_pairs: int
    n_customer_pairs: int


def effective_batch_size(n_lines: int, batch_size: int, min_steps: int = 50) -> int:
    """Small data gets smaller batches, so every epoch still makes ``min_steps`` updates."""
    return int(max(64, min(batch_size, math.ceil(n_lines / min_steps))))


class _Customer2Vec(torch.nn.Module):
    def __init__(self, n_customers: int, n_products: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        bound = 0.5 / dim
        # Customers are many and a batch touches few of them: sparse gradients (SparseAdam). Products are a
        # few hundred and every batch touches nearly all: dense tables (Adam) skip building and coalescing
        # ~50,000 sparse gradient rows per step (profiled: 45 % of training time).
        self.customer = torch.nn.Embedding(n_customers, dim, sparse=True)
        self.product_in = torch.nn.Embedding(n_products, dim)
        self.product_out = torch.nn.Embedding(n_products, dim)
        with torch.no_grad():
            self.customer.weight.uniform_(-bound, bound, generator=generator)
            self.product_in.weight.uniform_(-bound, bound, generator=generator)
            self.product_out.weight.zero_()


def _sgns_loss(center: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean negative-sampling loss: center (b, d), positive (b, d), negative (b, k, d)."""
    pos = torch.nn.functional.logsigmoid((center * positive).sum(-1))
    neg = torch.nn.functional.logsigmoid(-torch.bmm(negative, center.unsqueeze(-1)).squeeze(-1)).sum(-1)
    return -(pos + neg).mean()


def epochs_for(n_lines: int, config: EmbeddingConfig) -> int:
    """``config.epochs``, cut so that epochs × lines stays within ``max_line_passes`` (never below
    ``min_epochs``, never above ``config.epochs``)."""
    if n_lines <= 0 or not config.max_line_passes:
        return config.epochs
    return min(config.epochs, max(config.min_epochs, config.max_line_passes // n_lines))


def train_customer2vec(
    baskets: Baskets, config: EmbeddingConfig, progress: ProgressFn | None = None
) -> TrainedEmbeddings:
    """Fit product and customer vectors jointly. Deterministic for a fixed ``config.seed``."""
    started = time.perf_counter()
    lines = baskets.lines
    n_customers, n_products = len(baskets.customer_ids), len(baskets.product_ids)
    rng = np.random.default_rng(config.seed)
    pairs = basket_pairs(lines, config.max_basket_pairs, rng)
    cust_pairs = lines[["customer", "product"]].to_numpy(dtype=np.int64)
    noise = noise_distribution(lines["product"].to_numpy(), n_products)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, config.threads))
    try:
        generator = torch.Generator().manual_seed(config.seed)
        torch.manual_seed(config.seed)
        model = _Customer2Vec(n_customers, n_products, config.dim, generator)
        optimizers = (torch.optim.SparseAdam([model.customer.weight], lr=config.learning_rate),
                      torch.optim.Adam([model.product_in.weight, model.product_out.weight], lr=config.learning_rate))
        noise_t = torch.as_tensor(noise, dtype=torch.float64)
        pairs_t = torch.as_tensor(pairs)
        cust_t = torch.as_tensor(cust_pairs)
        # One epoch = every customer–product line once and as many basket pairs (cycled or cut).
        batch_size = effective_batch_size(len(cust_pairs), config.batch_size)
        steps = max(1, math.ceil(len(cust_pairs) / batch_size))
        epochs = epochs_for(len(cust_pairs), config)
        curve: list[dict[str, float]] = []
        for epoch in range(epochs):
            order_c = torch.randperm(len(cust_t), generator=generator)
            order_p = torch.randperm(len(pairs_t), generator=generator) if len(pairs_t) else None
            total, total_items, total_basket = 0.0, 0.0, 0.0
            for step in range(steps):
                batch_c = cust_t[order_c[step * batch_size:(step + 1) * batch_size]]
                b = len(batch_c)
                negs = torch.multinomial(noise_t, b * config.negatives, replacement=True, generator=generator)
                c_vec = model.customer(batch_c[:, 0])
                loss_c = _sgns_loss(c_vec, model.product_out(batch_c[:, 1]),
                                    model.product_out(negs.view(b, config.negatives)))
                loss_c = loss_c + config.customer_l2 * (c_vec * c_vec).sum(-1).mean()
                loss = loss_c
                loss_b_value = 0.0
                if order_p is not None:
                    pos = (torch.arange(step * batch_size, step * batch_size + b) % len(pairs_t))
                    batch_p = pairs_t[order_p[pos]]
                    negs_p = torch.multinomial(noise_t, b * config.negatives, replacement=True, generator=generator)
                    loss_b = _sgns_loss(model.product_in(batch_p[:, 0]), model.product_out(batch_p[:, 1]),
                                        model.product_out(negs_p.view(b, config.negatives)))
                    loss = loss + loss_b
                    loss_b_value = float(loss_b.detach())
                for optimizer in optimizers:
                    optimizer.zero_grad()
                loss.backward()
                for optimizer in optimizers:
                    optimizer.step()
                total += float(loss.detach()) * b
                total_items += float(loss_c.detach()) * b
                total_basket += loss_b_value * b
            n = float(len(cust_t))
            curve.append({"epoch": epoch + 1, "loss": total / n, "customer_loss": total_items / n,
                          "basket_loss": total_basket / n})
            if progress is not None:
                progress(epoch + 1, epochs, total / n)
        return TrainedEmbeddings(
            customer_vectors=model.customer.weight.detach().numpy().astype(np.float32).copy(),
            product_in=model.product_in.weight.detach().numpy().astype(np.float32).copy(),
            product_out=model.product_out.weight.detach().numpy().astype(np.float32).copy(),
            noise=noise.astype(np.float32),
            loss_curve=curve,
            seconds=time.perf_counter() - started,
            n_basket_pairs=len(pairs),
            n_customer_pairs=len(cust_pairs),
        )
    finally:
        torch.set_num_threads(previous_threads)


def fold_in(product_codes: list[np.ndarray], product_out: np.ndarray, noise: np.ndarray, negatives: int,
            customer_l2: float, iterations: int = 25, chunk: int = 256) -> np.ndarray:
    """Vectors for customers the model has not seen, from the products each bought (codes, repeats count).

    Minimises the training's customer objective with the product vectors frozen and the negative
    term replaced by its expectation over the noise distribution:

        f(c) = −(1/L) Σ_p n_p log σ(c·v_p) − k Σ_q π_q log σ(−c·v_q) + λ‖c‖²

    (n_p purchases of product p, L lines in all, k negatives, π the noise distribution). f is
    strictly convex, so damped Newton steps (numpy; exact gradient and Hessian) reach the unique
    minimum in a few iterations; deterministic, and no torch start-up cost on the request path.
    """
    n, dim = len(product_codes), product_out.shape[1]
    out = np.zeros((n, dim), dtype=np.float32)
    V = np.asarray(product_out, dtype=np.float64)
    q = np.asarray(noise, dtype=np.float64)
    chunk = max(1, min(chunk, 4_000_000 // max(1, V.shape[0] * dim)))  # bounds the (chunk, P, dim) Hessian work
    for start in range(0, n, chunk):
        block = product_codes[start:start + chunk]
        counts = np.zeros((len(block), V.shape[0]), dtype=np.float64)
        for i, codes in enumerate(block):
            if len(codes):
                np.add.at(counts[i], np.asarray(codes, dtype=np.int64), 1.0)
        lines = counts.sum(axis=1)
        has = lines > 0
        if has.any():
            out[start:start + len(block)][has] = _newton_fold_in(counts[has] / lines[has, None], V, q, negatives,
                                                                 customer_l2, iterations)
    return out


def _fold_in_objective(x: np.ndarray, w: np.ndarray, V: np.ndarray, q: np.ndarray, k: int, l2: float) -> np.ndarray:
    s = x @ V.T
    log_sig = -np.logaddexp(0.0, -s)
    log_sig_neg = -np.logaddexp(0.0, s)
    return -(w * log_sig).sum(1) - k * (q * log_sig_neg).sum(1) + l2 * (x * x).sum(1)


def _newton_fold_in(w: np.ndarray, V: np.ndarray, q: np.ndarray, k: int, l2: float, iterations: int) -> np.ndarray:
    """Damped Newton for every row of ``w`` (purchase shares over products) at once."""
    x = w @ V  # start at the mean output vector of the products bought
    eye = np.eye(V.shape[1])
    f = _fold_in_objective(x, w, V, q, k, l2)
    for _ in range(iterations):
        s = x @ V.T
        sig = 1.0 / (1.0 + np.exp(-s))
        g = -(w * (1.0 - sig)) @ V + k * (q * sig) @ V + 2.0 * l2 * x
        curvature = (w + k * q) * sig * (1.0 - sig)  # (n, P)
        H = np.matmul((curvature[:, :, None] * V[None]).transpose(0, 2, 1), V) + 2.0 * l2 * eye  # BLAS
        step = np.linalg.solve(H, g[:, :, None])[:, :, 0]
        t = np.ones(len(x))
        for _halving in range(20):  # backtracking: accept where the objective does not rise
            candidate = x - t[:, None] * step
            f_new = _fold_in_objective(candidate, w, V, q, k, l2)
            worse = f_new > f + 1e-12
            if not worse.any():
                break
            t[worse] *= 0.5
        keep = worse[:, None]  # rows that found no descent (already at the minimum) stay put
        x, f = np.where(keep, x, candidate), np.where(worse, f, f_new)
        if np.abs(g).max() < 1e-6:
            break
    return x.astype(np.float32)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


# --- FAISS ---------------------------------------------------------------------------------------------


def build_index(vectors: np.ndarray, kind: str, *, hnsw_m: int = 32, ef_construction: int = 80,
                ef_search: int = 64, nlist: int | None = None, nprobe: int = 16) -> faiss.Index:
    """An inner-product index over normalised vectors: ``exact``, ``hnsw`` or ``ivf``."""
    dim = vectors.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif kind == "ivf":
        nlist = nlist or max(1, int(4 * math.sqrt(len(vectors))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        train = vectors if len(vectors) <= 100 * nlist else vectors[
            np.random.default_rng(0).choice(len(vectors), 100 * nlist, replace=False)]
        index.train(train)
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    index.add(vectors)
    return index


def set_search_effort(index: faiss.Index, effort: int) -> None:
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = effort
    elif isinstance(index, faiss.IndexIVF):
        index.nprobe = effort


def recall_at_k(index: faiss.Index, exact: faiss.Index, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k (by inner product) that the index also returns, averaged over queries."""
    k = min(k, exact.ntotal)
    _, truth = exact.search(queries, k)
    _, found = index.search(queries, k)
    hits = sum(len(set(t.tolist()) & set(f.tolist())) for t, f in zip(truth, found, strict=True))
    return hits / float(truth.size) if truth.size else 1.0


@dataclass
class IndexChoice:
    index: faiss.Index
    kind: str
    recall_at_10: float
    effort: int | None
    build_seconds: float
    tuning: list[dict[str, float]] = field(default_factory=list)


def choose_index(vectors: np.ndarray, config: EmbeddingConfig) -> IndexChoice:
    """Exact search up to ``exact_index_max`` vectors, HNSW up to ``ivf_index_min``, IVF-Flat above;
    the search effort (efSearch / nprobe) is raised until recall@10 against exact search on a query
    sample reaches ``target_recall``."""
    started = time.perf_counter()
    if len(vectors) <= config.exact_index_max:
        index = build_index(vectors, "exact")
        return IndexChoice(index, "exact", 1.0, None, time.perf_counter() - started)
    if len(vectors) > config.ivf_index_min:
        kind, effort = "ivf", config.ivf_nprobe
        index = build_index(vectors, "ivf", nprobe=effort)
    else:
        kind, effort = "hnsw", config.hnsw_ef_search
        index = build_index(vectors, "hnsw", hnsw_m=config.hnsw_m, ef_construction=config.hnsw_ef_construction,
                            ef_search=effort)
    build_seconds = time.perf_counter() - started
    exact = build_index(vectors, "exact")
    rng = np.random.default_rng(config.seed)
    queries = vectors[rng.choice(len(vectors), min(config.recall_queries, len(vectors)), replace=False)]
    tuning = []
    recall = 0.0
    while True:
        set_search_effort(index, effort)
        recall = recall_at_k(index, exact, queries, 10)
        tuning.append({"ef_search" if kind == "hnsw" else "nprobe": effort, "recall_at_10": recall})
        if recall >= config.target_recall or effort >= 1024:
            break
        effort *= 2
    return IndexChoice(index, kind, recall, effort, build_seconds, tuning)


# --- Evaluation and the map ------------------------------------------------------------------------------


def knn_labels_purity(vectors: np.ndarray, labels: np.ndarray, k: int = 10, sample: np.ndarray | None = None) -> float:
    """Mean share of each (sampled) point's k nearest neighbours (cosine, self excluded) with its label."""
    x = normalise(vectors)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    rows = np.arange(len(x)) if sample is None else sample
    _, nn = index.search(x[rows], k + 1)
    shares = []
    for row, neighbours in zip(rows, nn, strict=True):
        neighbours = [j for j in neighbours if j != row and j >= 0][:k]
        shares.append(np.mean(labels[neighbours] == labels[row]))
    return float(np.mean(shares))


def rfm_features(frame: pd.DataFrame) -> pd.DataFrame:
    """Standardised log recency/frequency/monetary per customer from lines (customer_id, invoice,
    invoiced_at, amount): the baseline "neighbours on RFM alone" is measured against."""
    cutoff = frame["invoiced_at"].max()
    grouped = frame.groupby("customer_id")
    rfm = pd.DataFrame({
        "recency": (cutoff - grouped["invoiced_at"].max()).dt.total_seconds() / 86400.0,
        "frequency": grouped["invoice"].nunique().astype(float),
        "monetary": grouped["amount"].sum().astype(float).clip(lower=0.0),
    })
    logged = np.log1p(rfm)
    return (logged - logged.mean()) / logged.std(ddof=0).replace(0, 1.0)


def euclidean_knn_purity(features: np.ndarray, labels: np.ndarray, k: int = 10,
                         sample: np.ndarray | None = None) -> float:
    x = np.ascontiguousarray(features, dtype=np.float32)
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    rows = np.arange(len(x)) if sample is None else sample
    _, nn = index.search(x[rows], k + 1)
    shares = []
    for row, neighbours in zip(rows, nn, strict=True):
        neighbours = [j for j in neighbours if j != row and j >= 0][:k]
        shares.append(np.mean(labels[neighbours] == labels[row]))
    return float(np.mean(shares))


def seed_holdout_recall(vectors: np.ndarray, labels: np.ndarray, target: int, *, seed: int = 0,
                        metric: str = "cosine") -> float:
    """Hide half of one label's members, seed with the other half, rank everyone else by similarity
    to the seed centroid; returns the share of hidden members found in the top (hidden count) results."""
    rng = np.random.default_rng(seed)
    members = np.flatnonzero(labels == target)
    rng.shuffle(members)
    seed_rows, hidden = members[: len(members) // 2], members[len(members) // 2:]
    ranked = lookalike_rank(vectors, seed_rows, metric=metric)
    top = ranked[: len(hidden)]
    return float(np.isin(top, hidden).mean()) if len(hidden) else 0.0


def lookalike_rank(vectors: np.ndarray, seed_rows: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Every row not in the seed, most similar to the seed centroid first."""
    if metric == "cosine":
        x = normalise(vectors)
        centroid = normalise(x[seed_rows].mean(axis=0, keepdims=True))[0]
        score = x @ centroid
    else:  # euclidean distance to the centroid, negated
        x = np.asarray(vectors, dtype=np.float64)
        score = -np.linalg.norm(x - x[seed_rows].mean(axis=0), axis=1)
    score[seed_rows] = -np.inf
    order = np.argsort(-score, kind="stable")
    return order[: len(vectors) - len(seed_rows)]


def taste_map(vectors: np.ndarray, rows: np.ndarray, method: str, seed: int) -> np.ndarray:
    """2-D coordinates of the sampled rows: PCA (fast) or t-SNE on the cosine geometry."""
    x = normalise(vectors[rows]).astype(np.float64)
    if len(x) < 3:
        return np.zeros((len(x), 2))
    if method == "tsne" and len(x) >= 50:
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(5, (len(x) - 1) // 3)))
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=500,
                    metric="cosine").fit_transform(x)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


# --- The served artifact --------------------------------------------------------------------------------


SHARED_CATEGORY_MIN_SHARE = 0.15  # a category "counts" for a customer from this share of their purchase lines
SEED_CATEGORY_MIN_SHARE = 0.10  # ... and for a seed (an average over many customers is flatter)


def shared_categories(seed_mix: np.ndarray, mix: np.ndarray, categories: list[str], top: int = 3) -> list[str]:
    """Categories both the seed and the customer buy substantially, strongest common share first."""
    common = np.minimum(seed_mix, mix)
    order = np.argsort(-common, kind="stable")
    return [categories[i] for i in order[:top] if seed_mix[i] >= SEED_CATEGORY_MIN_SHARE
            and mix[i] >= SHARED_CATEGORY_MIN_SHARE]


@dataclass
class EmbeddingBundle:
    """Everything serving needs: normalised customer vectors, product vectors, category mixes, the
    FAISS index (serialised: FAISS indexes do not pickle) and the 2-D map of a sample."""

    config: dict[str, Any]
    customer_ids: np.ndarray  # Customer pks, row order of the vectors
    external_ids: np.ndarray  # the company's customer ids (str)
    vectors: np.ndarray  # (n, dim) float32, L2-normalised
    category_mix: np.ndarray  # (n, n_categories) float32
    categories: list[str]
    product_ids: np.ndarray
    skus: np.ndarray
    product_names: np.ndarray
    product_categories: np.ndarray
    product_in: np.ndarray
    product_out: np.ndarray
    noise: np.ndarray
    index_kind: str
    index_effort: int | None
    index_bytes: np.ndarray
    map_rows: np.ndarray
    map_coords: np.ndarray
    map_method: str
    version: int = 0
    _index: Any = field(default=None, repr=False)
    _rows: dict[str, int] | None = field(default=None, repr=False)
    _skus: dict[str, int] | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_index=None, _rows=None, _skus=None)
        return state

    @property
    def index(self) -> faiss.Index:
        if self._index is None:
            index = faiss.deserialize_index(self.index_bytes)
            if self.index_effort is not None:
                set_search_effort(index, self.index_effort)
            self._index = index
        return self._index

    def row_of(self) -> dict[str, int]:
        if self._rows is None:
            self._rows = {str(e): i for i, e in enumerate(self.external_ids)}
        return self._rows

    def product_row_of(self) -> dict[str, int]:
        if self._skus is None:
            self._skus = {str(s): i for i, s in enumerate(self.skus)}
        return self._skus

    def fold_in_skus(self, skus: list[str]) -> np.ndarray:
        """A normalised vector for a customer who bought these products (unknown skus ignored)."""
        rows = self.product_row_of()
        codes = np.array([rows[s] for s in skus if s in rows], dtype=np.int64)
        raw = fold_in([codes], self.product_out, self.noise, int(self.config["negatives"]),
                      float(self.config["customer_l2"]))
        return normalise(raw)[0]

    def sku_category_mix(self, skus: list[str]) -> np.ndarray:
        rows = self.product_row_of()
        mix = np.zeros(len(self.categories), dtype=np.float32)
        cat_index = {c: i for i, c in enumerate(self.categories)}
        for s in skus:
            if s in rows:
                mix[cat_index[self.product_categories[rows[s]]]] += 1
        return mix / max(mix.sum(), 1.0)

    def search(self, query: np.ndarray, k: int, exclude: np.ndarray | None = None,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k rows by cosine to one normalised query vector: (rows, similarities).

        ``exclude``: rows never returned (the seed); ``allowed``: boolean mask of eligible rows
        (filters). With a mask, search is exact over the eligible rows (a vectorised product);
        without, the FAISS index answers, asked for enough extra rows to drop the excluded ones.
        """
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        n = len(self.vectors)
        excluded = np.zeros(n, dtype=bool)
        if exclude is not None and len(exclude):
            excluded[exclude] = True
        if allowed is not None:
            eligible = np.flatnonzero(allowed & ~excluded)
            if not len(eligible) or k <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            scores = self.vectors[eligible] @ query[0]
            top = min(k, len(eligible))
            part = np.argpartition(-scores, top - 1)[:top]
            part = part[np.lexsort((eligible[part], -scores[part]))]
            return eligible[part], scores[part]
        want = min(n, k + int(excluded.sum()))
        if want <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        sims, rows = self.index.search(query, want)
        keep = (rows[0] >= 0) & ~excluded[np.maximum(rows[0], 0)]
        return rows[0][keep][:k].astype(np.int64), sims[0][keep][:k]

    def centroid(self, rows: np.ndarray) -> np.ndarray:
        return normalise(self.vectors[rows].mean(axis=0, keepdims=True))[0]

    def similar_products(self, sku: str, k: int = 10) -> list[tuple[str, float]]:
        rows = self.product_row_of()
        if sku not in rows:
            return []
        x = normalise(self.product_in)
        scores = x @ x[rows[sku]]
        scores[rows[sku]] = -np.inf
        order = np.argsort(-scores, kind="stable")[:k]
        return [(str(self.skus[i]), float(scores[i])) for i in order]


def build_bundle(baskets: Baskets, trained: TrainedEmbeddings, config: EmbeddingConfig, *, external_ids: np.ndarray,
                 skus: np.ndarray, product_names: np.ndarray) -> tuple[EmbeddingBundle, dict[str, Any]]:
    """Normalise, index, map; returns the bundle and the index/map metrics."""
    vectors = normalise(trained.customer_vectors)
    choice = choose_index(vectors, config)
    mix = category_mix(baskets.lines["customer"].to_numpy(), baskets.lines["product"].to_numpy(),
                       baskets.product_categories, baskets.categories, len(baskets.customer_ids))
    rng = np.random.default_rng(config.seed)
    n = len(vectors)
    map_rows = np.sort(rng.choice(n, min(config.map_sample, n), replace=False)) if n else np.zeros(0, np.int64)
    started = time.perf_counter()
    coords = taste_map(vectors, map_rows, config.map_method, config.seed) if n else np.zeros((0, 2))
    map_seconds = time.perf_counter() - started
    bundle = EmbeddingBundle(
        config=_config_dict(config),
        customer_ids=np.asarray(baskets.customer_ids, dtype=np.int64),
        external_ids=np.asarray(external_ids, dtype=object),
        vectors=vectors, category_mix=mix, categories=list(baskets.categories),
        product_ids=np.asarray(baskets.product_ids, dtype=np.int64), skus=np.asarray(skus, dtype=object),
        product_names=np.asarray(product_names, dtype=object), product_categories=baskets.product_categories,
        product_in=trained.product_in, product_out=trained.product_out, noise=trained.noise,
        index_kind=choice.kind, index_effort=choice.effort, index_bytes=faiss.serialize_index(choice.index),
        map_rows=map_rows.astype(np.int64), map_coords=np.asarray(coords, dtype=np.float32),
        map_method=config.map_method if config.map_method == "tsne" and len(map_rows) >= 50 else "pca",
    )
    bundle._index = choice.index
    metrics = {
        "index_kind": choice.kind, "index_recall_at_10": choice.recall_at_10, "index_effort": choice.effort,
        "index_build_seconds": choice.build_seconds, "index_tuning": choice.tuning,
        "map_method": bundle.map_method, "map_points": len(map_rows), "map_seconds": map_seconds,
    }
    return bundle, metrics


def _config_dict(config: EmbeddingConfig) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)


def category_quality(bundle: EmbeddingBundle, rfm: np.ndarray, sample: int, seed: int, k: int = 10) -> dict[str, float]:
    """What can be checked without ground truth: how often a customer's 10 nearest neighbours share their
    favourite category, with embeddings vs with RFM features alone vs chance."""
    n = len(bundle.vectors)
    if n <= k + 1:
        return {}
    favourite = bundle.category_mix.argmax(axis=1)
    rows = np.sort(np.random.default_rng(seed).choice(n, min(sample, n), replace=False))
    shares = np.bincount(favourite, minlength=len(bundle.categories)) / n
    return {
        "favourite_category_agreement_at_10": knn_labels_purity(bundle.vectors, favourite, k, rows),
        "favourite_category_agreement_rfm_at_10": euclidean_knn_purity(rfm, favourite, k, rows),
        "favourite_category_agreement_chance": float((shares ** 2).sum()),
        "sample": len(rows),
    }
