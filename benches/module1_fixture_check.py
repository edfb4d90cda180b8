"""Cross-check the golden fixture fixtures/golden/module1.tiny.step.safetensors against the PyTorch
peer (../shared/peer/darlc_module1_torch.py, an independent SPEC §4 implementation) in float64:
losses, every gradient, and the parameters after Adam + EMA. Not part of the crate's tests.

Usage: python3 benches/module1_fixture_check.py [FIXTURE] [PEER]
"""
import importlib.util, json, struct, sys
import numpy as np
import torch

fx = sys.argv[1] if len(sys.argv) > 1 else "fixtures/golden/module1.tiny.step.safetensors"
peer = sys.argv[2] if len(sys.argv) > 2 else "../shared/peer/darlc_module1_torch.py"
spec = importlib.util.spec_from_file_location("peer", peer)
P = importlib.util.module_from_spec(spec); spec.loader.exec_module(P)

def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n]); base = 8 + n
    dt = {"F64": np.float64, "F32": np.float32, "I64": np.int64}
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[base + s:base + e], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out

t = load(fx)
torch.manual_seed(0)
cfg = P.Cfg(C=1, H=10, W=10, p=5, D=8, depth=2, heads=2, d_c=4, dec_widths=(6, 8, 10, 12), rho="0.5")
model = P.ModuleI(cfg, attn="math").double()
# The peer builds its fixed PE buffer in float32 before .double(); use the exact f64 table (SPEC §4.1).
with torch.no_grad():
    for v in (model.vit, model.vit_t):
        v.pe.copy_(torch.as_tensor(P.sincos_2d(cfg.D, cfg.gh, cfg.gw), dtype=torch.float64))
names = [n for n, _, _ in P._spec_pairs(model)]
sd = {n: torch.from_numpy(t[n].copy()) for n in names}
P.load_state_dict_spec(model, sd)
x = torch.from_numpy(t["x"].copy()); xs = torch.from_numpy(t["x_s"].copy())
keep = torch.from_numpy(t["mask.visible"].copy()).reshape(6, cfg.n_keep)
opt = P.make_optimizer(model, 1e-3)
loss, parts = model(x, xs, keep)
opt.zero_grad(set_to_none=True); loss.backward()
worst = {}
def cmp(kind, a, b):
    a = np.asarray(a, dtype=np.float64); b = np.asarray(b, dtype=np.float64)
    rel = np.max(np.abs(a - b) / (1e-12 + np.abs(b))) if a.size else 0.0
    ab = np.max(np.abs(a - b)) if a.size else 0.0
    w = worst.get(kind, (0.0, 0.0)); worst[kind] = (max(w[0], rel), max(w[1], ab))
cmp("loss", loss.item(), t["l_ssl"]); cmp("loss", parts["l_mim"].item(), t["l_mim"]); cmp("loss", parts["l_cl"].item(), t["l_cl"])
g = P.state_dict_spec(model, grads=True)
for n in names:
    if not n.startswith("target.") and not n.endswith("attn.b_k"):
        cmp("grad", g[n].numpy(), t["grad." + n])
bk = max(np.max(np.abs(t["grad." + n])) for n in names if n.endswith("attn.b_k") and not n.startswith("target."))
opt.step(); model.ema_update()
after = P.state_dict_spec(model)
for n in names:
    cmp("after", after[n].numpy(), t["after." + n])
for k, (r, a) in worst.items():
    print(f"{k:6s}: max rel diff {r:.2e}, max abs diff {a:.2e}")
print(f"|grad b_k| max in fixture: {bk:.2e} (identically zero in exact arithmetic; excluded)")
