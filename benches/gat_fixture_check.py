#!/usr/bin/env python3
"""Independent check of the gat.tiny.* golden cases with PyTorch autograd (f64), using the model of
benches/gat_torch.py. Run from the crate root: python3 benches/gat_fixture_check.py (with torch installed)"""
import sys; sys.path.insert(0, "benches")
import torch, numpy as np, gat_torch as g
from safetensors.numpy import load_file
torch.set_default_dtype(torch.float64)
def model(d):
    p = {k: torch.from_numpy(d[k].copy()) for k in ["gat.W1","gat.W2","gat.a_c","gat.a_n"]}
    off, nb = d["graph.offsets"], d["graph.nbrs"]
    centre = torch.from_numpy(np.repeat(np.arange(len(off)-1), np.diff(off)))
    return g.TiedGAT(p), torch.from_numpy(d["x"].copy()), centre, torch.from_numpy(nb.copy())
d = load_file("fixtures/golden/gat.tiny.forward.safetensors")
m, x, c, n = model(d)
p1, h3 = m.forward(x, c, n); xh = h3 @ m.W1.t()
loss = (torch.from_numpy(d["w.h3"]) * h3).sum() + (torch.from_numpy(d["w.x_hat"]) * xh).sum()
print("h3 err", np.abs(h3.detach().numpy() - d["h3"]).max(), "x_hat err", np.abs(xh.detach().numpy() - d["x_hat"]).max())
d = load_file("fixtures/golden/gat.tiny.loss.safetensors")
m, x, c, n = model(d)
L = m.loss(x, c, n, False, 0); (L * float(d["w.l_gat"])).backward()
print("loss rel err", abs(float(L) * float(d["w.l_gat"]) - float(d["loss"])) / abs(float(d["loss"])))
for k, prm in [("gat.W1", m.W1), ("gat.W2", m.W2), ("gat.a_c", m.a_c), ("gat.a_n", m.a_n)]:
    ref = d["grad." + k]; print(k, "grad rel err", np.abs(prm.grad.numpy() - ref).max() / np.abs(ref).max())
d = load_file("fixtures/golden/gat.tiny.step.safetensors")
m, x, c, n = model(d)
opt = torch.optim.Adam(m.parameters(), lr=1e-3, weight_decay=1e-4)
L = m.loss(x, c, n, False, 0); L.backward(); nrm = torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0); opt.step()
print("step: loss", float(L), d["l_gat"], "norm", float(nrm), d["grad_norm"])
for k, prm in [("gat.W1", m.W1), ("gat.W2", m.W2), ("gat.a_c", m.a_c), ("gat.a_n", m.a_n)]:
    print(k, "after max abs err", np.abs(prm.detach().numpy() - d["after." + k]).max())
