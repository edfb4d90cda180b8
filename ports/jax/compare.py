#!/usr/bin/env python3
"""Development aid: compare a candidate folder with the reference under the f64 tier of the manifest
(the same rule as `darlc verify`), printing failures only. CI uses `darlc verify`."""
import json, os, sys
import numpy as np
from safetensors.numpy import load_file

ref, cand = sys.argv[1], sys.argv[2]
tier = sys.argv[3] if len(sys.argv) > 3 else "f64"
man = json.load(open(os.path.join(ref, "manifest.json")))
bad = 0
for c in man["cases"]:
    p = os.path.join(cand, c["file"])
    if not os.path.exists(p):
        continue
    r, k = load_file(os.path.join(ref, c["file"])), load_file(p)
    tols = c["tolerance"][tier]
    per = c.get("tensor_tolerance", {})
    for role, names in (("outputs", c["outputs"]), ("grads", c["grads"])):
        for n in names:
            tol = per.get(n, {}).get(tier, tols[role]) if isinstance(per.get(n), dict) else tols[role]
            a, b = r[n].astype(np.float64), k.get(n)
            if b is None or a.shape != b.shape:
                print(c["name"], n, "MISSING/SHAPE", None if b is None else b.shape, a.shape); bad += 1; continue
            d = np.abs(a - b)
            ok = np.all(d <= tol["abs"] + tol["rel"] * np.abs(a))
            if not ok:
                bad += 1
                print(f"FAIL {c['name']:28s} {n:30s} max_abs {d.max():.3e} max|ref| {np.abs(a).max():.3e}")
print("failures:", bad)
