#!/usr/bin/env python3
"""PyTorch side of the GAT training benchmark (issue 4 item 7; SPEC §3.3-3.4).

Trains the same tied graph-attention autoencoder as darlc's `augment::gat` on the data exported by
`cargo run --release --example gat_bench -- --export DIR` (features x.f32 [n, C], edge list
edges.i64 [(v, u)] in CSR order with self-loops, and the initial parameters gat.*.f32), from the
same initial parameters, f32:

    P1 = X W1;  e_vu = sigmoid(P1[v].a_c + P1[u].a_n);  alpha = softmax over N(v)
    H1 = ELU(sum_u alpha_vu P1[u]);  H2 = H1 W2
    H3 = ELU(sum_u alpha_vu (H2 W2^T)[u]);  X_hat = H3 W1^T   (true tying: the same tensors)
    L = mean((X - X_hat)^2)

Each epoch: backward, clip_grad_norm_(5), Adam(lr 1e-3, weight_decay 1e-4 coupled).step()
(SPEC §3.4). Sparse aggregation with index_add_ (never an n x n matrix). Prints one JSON line:
seconds per epoch (median/mean over the timed epochs, the first epoch excluded as warm-up), peak
RSS, and the loss per epoch (to compare with darlc's, which starts from the same parameters).
`--gram` evaluates the loss in the Gram form instead (same function; see darlc's module docs).
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch


def load(d):
    meta = json.load(open(os.path.join(d, "meta.json")))
    n, c, f1, f2 = meta["n"], meta["c"], meta["hidden"], meta["embed"]
    x = torch.from_numpy(np.fromfile(os.path.join(d, "x.f32"), dtype="<f4").reshape(n, c))
    e = torch.from_numpy(np.fromfile(os.path.join(d, "edges.i64"), dtype="<i8").reshape(-1, 2))
    shapes = {"gat.W1": (c, f1), "gat.W2": (f1, f2), "gat.a_c": (f1,), "gat.a_n": (f1,)}
    p = {
        k: torch.from_numpy(np.fromfile(os.path.join(d, k + ".f32"), dtype="<f4").reshape(s))
        for k, s in shapes.items()
    }
    return x, e[:, 0].contiguous(), e[:, 1].contiguous(), p


class TiedGAT(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.W1 = torch.nn.Parameter(p["gat.W1"].clone())
        self.W2 = torch.nn.Parameter(p["gat.W2"].clone())
        self.a_c = torch.nn.Parameter(p["gat.a_c"].clone())
        self.a_n = torch.nn.Parameter(p["gat.a_n"].clone())

    def aggregate(self, alpha, h, centre, nbr):
        out = torch.zeros_like(h)
        return out.index_add_(0, centre, alpha[:, None] * h[nbr])

    def forward(self, x, centre, nbr):
        n = x.shape[0]
        p1 = x @ self.W1
        s = torch.sigmoid((p1 @ self.a_c)[centre] + (p1 @ self.a_n)[nbr])
        # Scores are in (0, 1): exp needs no max shift (SPEC §16).
        w = torch.exp(s)
        z = torch.zeros(n, dtype=w.dtype).index_add_(0, centre, w)
        alpha = w / z[centre]
        h1 = torch.nn.functional.elu(self.aggregate(alpha, p1, centre, nbr))
        h2 = h1 @ self.W2
        h3 = torch.nn.functional.elu(self.aggregate(alpha, h2 @ self.W2.t(), centre, nbr))
        return p1, h3

    def loss(self, x, centre, nbr, gram, x_sq):
        p1, h3 = self.forward(x, centre, nbr)
        nc = x.numel()
        if gram:
            return (x_sq - 2 * (p1 * h3).sum() + ((self.W1.t() @ self.W1) * (h3.t() @ h3)).sum()) / nc
        return torch.mean((x - h3 @ self.W1.t()) ** 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gram", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, centre, nbr, p = load(a.data)
    model = TiedGAT(p)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    x_sq = float((x.double() ** 2).sum())
    stamps, losses = [time.perf_counter()], []
    for _ in range(a.epochs + 1):
        opt.zero_grad(set_to_none=True)
        loss = model.loss(x, centre, nbr, a.gram, x_sq)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(float(loss))
        stamps.append(time.perf_counter())
    secs = np.diff(stamps)[1:]
    print(json.dumps({
        "impl": "torch", "form": "gram" if a.gram else "direct", "torch": torch.__version__,
        "n": x.shape[0], "c": x.shape[1], "edges": int(centre.numel()), "threads": a.threads,
        "epochs_timed": len(secs), "sec_per_epoch_median": round(float(np.median(secs)), 4),
        "sec_per_epoch_mean": round(float(np.mean(secs)), 4),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "losses": [round(l, 9) for l in losses],
    }))


if __name__ == "__main__":
    main()
