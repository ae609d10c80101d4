#!/usr/bin/env python3
"""PyTorch reference for `npm run bench -- train`: the same candidate generator, sampling and
batch as packages/candidate-gen, trained on the same data file, timed the same way.

Network (packages/candidate-gen/src/model.ts, DEFAULT_MODEL_CONFIG):
  x = [mean of the last 20 watch embeddings (64), mean of the last 32 search-token embeddings (16),
       gender, occupation and geo embeddings (3 x 8), 2 continuous values]        -> 106 columns
  u = Linear(106, 256) ReLU Linear(256, 128) ReLU Linear(128, 64)                (the user vector)
Sampled softmax (packages/candidate-gen/src/train-step.ts): per batch, S shared negatives drawn
with replacement with probability proportional to label count^0.75; every logit gets -log(S p(j))
(logQ); a negative equal to the row's positive is masked; cross-entropy of the positive.
Optimisers as the trainer's defaults: Adam on the tower (lr 2e-3, eps 1e-7), lazy (sparse) Adam
on every embedding table (lr 2e-3, eps 1e-8): nn.EmbeddingBag / nn.Embedding with sparse=True
and torch.optim.SparseAdam, the idiomatic PyTorch way to train large embedding tables.

Data: `ml100k:DIR` (u.data, u.user) or `events:DIR` (events.csv, users.csv, searches.csv of
../shared/PROTOCOL.md). Examples follow protocol lastout under holdout "test": per user the
first occurrence of each item, chronological; the last event of users with >= 3 is held out;
one example per later position t >= 1 (at most the 150 most recent per user), label = watch at t,
features from the watches (and searches) before t. The feature values (age normalisation, search
tokenisation, vocabularies' minimum counts) are simpler than packages/features: they do not
change the amount of work per example, which is what this reference measures.

Timing: `warmup` steps, then `batches` timed steps; batch assembly (gathering the rows of the
shuffled examples, sampling negatives) is inside the timed loop, as in the TypeScript trainer.
Prints one JSON line. Run with OMP_WAIT_POLICY=PASSIVE (the bench does) so that idle OpenMP
threads do not spin on a shared machine.
"""
import argparse
import csv
import json
import math
import os
import re
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HISTORY = 20
SEARCH = 32
DIM = 64
SEARCH_DIM = 16
CAT_DIM = 8
MAX_PER_USER = 150
MIN_HISTORY = 1
ALPHA = 0.75
MASKED = -1e9


def read_ml100k(d):
    events = []
    with open(os.path.join(d, "u.data"), encoding="latin-1") as f:
        for line in f:
            u, i, _r, ts = line.split("\t")
            events.append((u, i, float(ts)))
    users = {}
    with open(os.path.join(d, "u.user"), encoding="latin-1") as f:
        for line in f:
            uid, age, gender, occupation, zipc = line.rstrip("\n").split("|")
            users[uid] = (float(age), gender, occupation, zipc.strip()[:3].upper())
    return events, users, []


def read_events_dir(d):
    events = []
    with open(os.path.join(d, "events.csv"), newline="") as f:
        r = csv.DictReader(f)
        for row in r:
            events.append((row["user_id"], row["item_id"], float(row["timestamp"])))
    users = {}
    p = os.path.join(d, "users.csv")
    if os.path.exists(p):
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                age = row.get("age") or ""
                users[row["user_id"]] = (float(age) if age else float("nan"), row.get("gender") or "", row.get("occupation") or "", row.get("geo") or "")
    searches = []
    p = os.path.join(d, "searches.csv")
    if os.path.exists(p):
        with open(p, newline="") as f:
            for row in csv.DictReader(f):
                searches.append((row["user_id"], float(row["timestamp"]), row["query"]))
    return events, users, searches


def id_key(s):
    return (0, int(s), "") if s.isdigit() else (1, 0, s)


def build_examples(events, users, searches):
    """Examples as padded arrays (the same layout as the TypeScript EncodedBatch)."""
    events.sort(key=lambda e: (id_key(e[0]), e[2], id_key(e[1])))
    by_user = {}
    for u, i, ts in events:
        by_user.setdefault(u, []).append((i, ts))
    train = {}
    for u, evs in by_user.items():
        seen = set()
        kept = []
        for i, ts in evs:
            if i in seen:
                continue
            seen.add(i)
            kept.append((i, ts))
        if len(kept) >= 3:
            kept = kept[:-1]  # the test event
        train[u] = kept
    item_ids = {}
    for evs in train.values():
        for i, _ in evs:
            if i not in item_ids:
                item_ids[i] = len(item_ids) + 1  # 0 = OOV
    n_items = len(item_ids) + 1

    token_re = re.compile(r"[a-z0-9]+")
    user_searches = {}
    tokens = {}
    for u, ts, q in searches:
        toks = token_re.findall(q.lower())
        ids = []
        for t in toks:
            if t not in tokens:
                tokens[t] = len(tokens) + 1
            ids.append(tokens[t])
        user_searches.setdefault(u, []).append((ts, ids))
    for v in user_searches.values():
        v.sort(key=lambda s: s[0])
    n_tokens = len(tokens) + 1

    cats = [{"": 0}, {"": 0}, {"": 0}]
    rows_w, rows_s, cat_rows, cont_rows, labels = [], [], [], [], []
    for u, evs in train.items():
        age, gender, occupation, geo = users.get(u, (float("nan"), "", "", ""))
        cat = []
        for k, v in enumerate((gender, occupation, geo)):
            cat.append(cats[k].setdefault(v, len(cats[k])))
        ids = [item_ids[i] for i, _ in evs]
        us = user_searches.get(u, [])
        first = max(MIN_HISTORY, len(evs) - MAX_PER_USER)
        for t in range(first, len(evs)):
            hist = ids[max(0, t - HISTORY):t]
            rows_w.append(hist + [n_items] * (HISTORY - len(hist)))  # n_items = the padding row
            toks = []
            ts = evs[t][1]
            for sts, sids in us:
                if sts >= ts:
                    break
                toks.extend(sids)
            toks = toks[-SEARCH:]
            rows_s.append(toks + [n_tokens] * (SEARCH - len(toks)))
            cat_rows.append(cat)
            cont_rows.append([0.0, 0.0 if math.isnan(age) else age / 100.0])
            labels.append(ids[t])
    return {
        "watch": np.asarray(rows_w, dtype=np.int64),
        "search": np.asarray(rows_s, dtype=np.int64),
        "cat": np.asarray(cat_rows, dtype=np.int64),
        "cont": np.asarray(cont_rows, dtype=np.float32),
        "label": np.asarray(labels, dtype=np.int64),
        "n_items": n_items,
        "n_tokens": n_tokens,
        "cat_sizes": [len(c) for c in cats],
    }


class YoutubeDNN(nn.Module):
    def __init__(self, n_items, n_tokens, cat_sizes, tower=(256, 128, 64)):
        super().__init__()
        self.watch = nn.EmbeddingBag(n_items + 1, DIM, mode="mean", sparse=True, padding_idx=n_items)
        self.search = nn.EmbeddingBag(n_tokens + 1, SEARCH_DIM, mode="mean", sparse=True, padding_idx=n_tokens)
        self.cats = nn.ModuleList([nn.Embedding(n, CAT_DIM, sparse=True) for n in cat_sizes])
        self.output = nn.Embedding(n_items, DIM, sparse=True)
        for e in [self.watch, self.search, self.output, *self.cats]:
            nn.init.normal_(e.weight, std=0.05)
        layers = []
        d = DIM + SEARCH_DIM + CAT_DIM * len(cat_sizes) + 2
        for k, w in enumerate(tower):
            layers.append(nn.Linear(d, w))
            if k < len(tower) - 1:
                layers.append(nn.ReLU())
            d = w
        self.tower = nn.Sequential(*layers)

    def user_vectors(self, watch, search, cat, cont):
        parts = [self.watch(watch), self.search(search)] + [e(cat[:, k]) for k, e in enumerate(self.cats)] + [cont]
        return self.tower(torch.cat(parts, dim=1))

    def loss(self, watch, search, cat, cont, labels, label_off, negs, neg_off):
        u = self.user_vectors(watch, search, cat, cont)
        pos = (u * self.output(labels)).sum(1, keepdim=True) + label_off[:, None]
        neg = u @ self.output(negs).t() + neg_off[None, :]
        neg = neg.masked_fill(negs[None, :] == labels[:, None], MASKED)
        logits = torch.cat([pos, neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(labels), dtype=torch.long))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", required=True, help="ml100k:DIR or events:DIR")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    kind, _, d = a.data.partition(":")
    if kind == "ml100k":
        events, users, searches = read_ml100k(d)
    elif kind == "events":
        events, users, searches = read_events_dir(d)
    else:
        sys.exit(f"youtube_dnn.py: --data must be ml100k:DIR or events:DIR, got {a.data!r}")
    t0 = time.perf_counter()
    ex = build_examples(events, users, searches)
    n = len(ex["label"])
    need = (a.warmup + a.batches) * a.batch_size
    counts = np.bincount(ex["label"], minlength=ex["n_items"]).astype(np.float64)
    weights = counts ** ALPHA
    weights[0] = 0.0
    p = weights / weights.sum()
    offsets = np.zeros(ex["n_items"], dtype=np.float32)
    nz = p > 0
    offsets[nz] = -np.log(a.negatives * p[nz])
    offsets_t = torch.from_numpy(offsets)
    probs_t = torch.from_numpy(p)
    setup = time.perf_counter() - t0

    model = YoutubeDNN(ex["n_items"], ex["n_tokens"], ex["cat_sizes"])
    dense = list(model.tower.parameters())
    sparse = [model.watch.weight, model.output.weight] + [e.weight for e in model.cats]
    if ex["n_tokens"] > 1:
        sparse.append(model.search.weight)
    else:
        # No searches (ml-100k): every bag is empty, as in the TypeScript model, and SparseAdam
        # rejects an all-empty sparse gradient.
        model.search.weight.requires_grad_(False)
    opt_dense = torch.optim.Adam(dense, lr=2e-3, eps=1e-7)
    opt_sparse = torch.optim.SparseAdam(sparse, lr=2e-3, eps=1e-8)
    watch_t = torch.from_numpy(ex["watch"])
    search_t = torch.from_numpy(ex["search"])
    cat_t = torch.from_numpy(ex["cat"])
    cont_t = torch.from_numpy(ex["cont"])
    label_t = torch.from_numpy(ex["label"])
    gen = torch.Generator().manual_seed(a.seed)
    order = torch.randperm(n, generator=gen)
    pos = 0
    t_start = None
    cpu_start = None
    losses = []
    for step in range(a.warmup + a.batches):
        if step == a.warmup:
            t_start = time.perf_counter()
            cpu_start = time.process_time()
        if pos + a.batch_size > n:
            order = torch.randperm(n, generator=gen)
            pos = 0
        idx = order[pos:pos + a.batch_size]
        pos += a.batch_size
        labels = label_t[idx]
        negs = torch.multinomial(probs_t, a.negatives, replacement=True, generator=gen)
        loss = model.loss(watch_t[idx], search_t[idx], cat_t[idx], cont_t[idx], labels, offsets_t[labels], negs, offsets_t[negs])
        opt_dense.zero_grad(set_to_none=True)
        opt_sparse.zero_grad(set_to_none=True)
        loss.backward()
        opt_dense.step()
        opt_sparse.step()
        losses.append(loss.item())
    seconds = time.perf_counter() - t_start
    cpu = time.process_time() - cpu_start
    examples = a.batches * a.batch_size
    print(json.dumps({
        "engine": f"pytorch {torch.__version__}",
        "data": a.data,
        "examples": n,
        "items": ex["n_items"],
        "threads": a.threads,
        "batches": a.batches,
        "warmup": a.warmup,
        "examples_per_second": round(examples / seconds),
        "examples_per_cpu_second": round(examples / cpu) if cpu > 0 else None,
        "ms_per_batch": round(1000 * seconds / a.batches, 3),
        "first_loss": round(losses[0], 4),
        "last_loss": round(sum(losses[-10:]) / len(losses[-10:]), 4),
        "setup_seconds": round(setup, 1),
        "enough_examples_for_one_pass": n >= need,
    }))


if __name__ == "__main__":
    main()
