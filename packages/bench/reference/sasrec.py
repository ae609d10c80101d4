#!/usr/bin/env python3
"""PyTorch SASRec reference for `npm run bench -- sequence` (Debian's python3-torch 1.13).

The network of Kang & McAuley (ICDM 2018) as in SASRec.pytorch: learned positions, blocks of
[LayerNorm -> single-head causal attention (nn.MultiheadAttention: Q, K, V and output
projections, dropout on the attention weights) -> residual -> LayerNorm -> point-wise ReLU
feed-forward with dropout -> residual], a final LayerNorm, item embeddings shared with the
output; trained with cross-entropy over the whole catalogue at every position ("full softmax"),
Adam(lr, betas=(0.9, 0.98)), padding keys masked. The same network and loss as
@recsys/sequence's "sasrec" encoder with softmax "full", windows "last".

Input: a JSON file written by the bench (the protocol's split, so that both implementations see
exactly the same data, tie order and exclusions):
  {"numItems": N, "sequences": [[item index, ...] per user, chronological, deduplicated],
   "evaluated": [0/1 per user]}
For an evaluated user the last item is the test item and the one before it the validation
item. Validation phase: train on everything but those two, evaluate validation NDCG@10 every
`eval_every` epochs, stop after `patience` evaluations without improvement. Test phase: train a
fresh model on everything but the test items for the best epoch count, evaluate on test.
Ranking: every item scored, the user's history removed, ties by item index ascending.
Prints one JSON line (with "ranks": the 0-based test rank of each evaluated user, in user order).
"""
import argparse
import json
import math
import os
import time

import numpy as np
import torch


class SASRec(torch.nn.Module):
    def __init__(self, num_items, dim, max_len, blocks, dropout):
        super().__init__()
        self.item = torch.nn.Embedding(num_items + 1, dim, padding_idx=0)
        self.pos = torch.nn.Embedding(max_len, dim)
        self.drop = torch.nn.Dropout(dropout)
        self.ln1 = torch.nn.ModuleList()
        self.attn = torch.nn.ModuleList()
        self.ln2 = torch.nn.ModuleList()
        self.ff1 = torch.nn.ModuleList()
        self.ff2 = torch.nn.ModuleList()
        for _ in range(blocks):
            self.ln1.append(torch.nn.LayerNorm(dim, eps=1e-8))
            self.attn.append(torch.nn.MultiheadAttention(dim, 1, dropout=dropout))
            self.ln2.append(torch.nn.LayerNorm(dim, eps=1e-8))
            self.ff1.append(torch.nn.Linear(dim, dim))
            self.ff2.append(torch.nn.Linear(dim, dim))
        self.ln = torch.nn.LayerNorm(dim, eps=1e-8)
        self.dim = dim
        for name, p in self.named_parameters():
            if p.dim() > 1:
                torch.nn.init.xavier_normal_(p)
        with torch.no_grad():
            self.item.weight[0].zero_()

    def forward(self, ids):
        # ids: [B, L] int64, 0 = padding (left-padded)
        B, L = ids.shape
        keep = (ids != 0).unsqueeze(-1).float()
        x = self.item(ids) * math.sqrt(self.dim) + self.pos.weight.unsqueeze(0)
        x = self.drop(x) * keep
        causal = torch.triu(torch.ones(L, L, dtype=torch.bool), diagonal=1)
        mask = causal.unsqueeze(0) | (ids == 0).unsqueeze(1)  # [B, L(query), L(key)]
        add = torch.zeros(B, L, L).masked_fill(mask, -1e9)
        for ln1, attn, ln2, ff1, ff2 in zip(self.ln1, self.attn, self.ln2, self.ff1, self.ff2):
            xt = x.transpose(0, 1)
            q = ln1(xt)
            o, _ = attn(q, xt, xt, attn_mask=add, need_weights=False)
            r = ln2(q + o).transpose(0, 1)
            f = self.drop(ff2(self.drop(torch.relu(ff1(r)))))
            x = (r + f) * keep
        return self.ln(x) * keep  # [B, L, d]


def windows(seqs, L):
    """One window per user: the last L+1 items (inputs and next-item targets), left-padded."""
    inp, tgt = [], []
    for s in seqs:
        if len(s) < 2:
            continue
        w = s[-(L + 1):]
        n = len(w) - 1
        a = [0] * (L - n) + [i + 1 for i in w[:-1]]
        b = [0] * (L - n) + [i + 1 for i in w[1:]]
        inp.append(a)
        tgt.append(b)
    return torch.tensor(inp, dtype=torch.long), torch.tensor(tgt, dtype=torch.long)


def evaluate(model, histories, targets, num_items, L, k=10):
    model.eval()
    hits = ndcg = 0.0
    ranks = []  # 0-based rank of each user's target, in the order of `histories`
    with torch.no_grad():
        E = model.item.weight[1:]  # [N, d]
        for start in range(0, len(histories), 256):
            hs = histories[start:start + 256]
            ids = torch.zeros(len(hs), L, dtype=torch.long)
            for b, h in enumerate(hs):
                w = h[-L:]
                if w:
                    ids[b, L - len(w):] = torch.tensor(w) + 1
            state = model(ids)[:, -1, :]
            scores = (state @ E.T).numpy()
            for b, h in enumerate(hs):
                t = targets[start + b]
                s = scores[b].copy()
                s[h] = -np.inf  # removed from the ranking (the target is never in its history)
                st = s[t]
                idx = np.arange(num_items)
                rank = int(np.sum(s > st) + np.sum((s == st) & (idx < t)))
                ranks.append(rank)
                if rank < k:
                    hits += 1
                    ndcg += 1 / math.log2(rank + 2)
    model.train()
    n = len(histories)
    return hits / n, ndcg / n, ranks


def train(seqs, num_items, args, seed, epochs, validate=None):
    torch.manual_seed(seed)
    np.random.seed(seed)
    L = args.max_len
    model = SASRec(num_items, args.dim, L, args.blocks, args.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    inp, tgt = windows(seqs, L)
    n = inp.shape[0]
    examples = 0
    train_s = 0.0
    cpu_s = 0.0
    best, best_epoch, since = -1.0, 0, 0
    epoch = 0
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        c0 = time.process_time()
        perm = torch.randperm(n)
        for start in range(0, n, args.batch):
            b = perm[start:start + args.batch]
            x, y = inp[b], tgt[b]
            h = model(x)  # [B, L, d]
            valid = y != 0
            logits = h[valid] @ model.item.weight[1:].T
            loss = torch.nn.functional.cross_entropy(logits, y[valid] - 1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.item.weight[0].zero_()
            examples += int(valid.sum())
        train_s += time.perf_counter() - t0
        cpu_s += time.process_time() - c0
        if validate is not None and epoch % args.eval_every == 0:
            _, v, _ = validate(model)
            if v > best:
                best, best_epoch, since = v, epoch, 0
            else:
                since += 1
                if since >= args.patience:
                    break
    return model, epoch, best_epoch, best, examples, train_s, cpu_s


def main():
    p = argparse.ArgumentParser()
    p.add_argument("data")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--max-len", type=int, default=50)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--max-epochs", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=5)
    p.add_argument("--patience", type=int, default=4)
    args = p.parse_args()
    with open(args.data) as f:
        data = json.load(f)
    N = data["numItems"]
    seqs = data["sequences"]
    ev = data["evaluated"]
    val_train = [s[:-2] if e else s for s, e in zip(seqs, ev)]
    val_hist = [s[:-2] for s, e in zip(seqs, ev) if e]
    val_tgt = [s[-2] for s, e in zip(seqs, ev) if e]
    test_train = [s[:-1] if e else s for s, e in zip(seqs, ev)]
    test_hist = [s[:-1] for s, e in zip(seqs, ev) if e]
    test_tgt = [s[-1] for s, e in zip(seqs, ev) if e]
    L = args.max_len
    _, epochs, best_epoch, best_val, ex_val, s_val, c_val = train(
        val_train, N, args, args.seed, args.max_epochs,
        validate=lambda m: evaluate(m, val_hist, val_tgt, N, L))
    model, _, _, _, ex_test, s_test, c_test = train(test_train, N, args, args.seed, max(best_epoch, 1))
    hr, ndcg, ranks = evaluate(model, test_hist, test_tgt, N, L)
    print(json.dumps({
        "model": "sasrec-pytorch", "seed": args.seed, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "epochs_run": epochs, "best_epoch": best_epoch,
        "val_ndcg@10": best_val, "hr@10": hr, "ndcg@10": ndcg, "users": len(test_tgt),
        "examples_per_second": (ex_val + ex_test) / (s_val + s_test),
        "examples_per_cpu_second": (ex_val + ex_test) / (c_val + c_test),
        "train_seconds": s_val + s_test,
        "ranks": ranks,
    }))


if __name__ == "__main__":
    main()
