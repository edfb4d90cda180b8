#!/usr/bin/env bash
# Side-by-side GAT training epoch: darlc (f32, examples/gat_bench.rs) vs PyTorch (benches/gat_torch.py),
# same data, same graph, same initial parameters, same thread count, in one run (issue 4 item 7).
# Usage: benches/gat_compare.sh   Env: PY=python3 THREADS=2 EPOCHS=3 SPOTS=4000 GENES=15000
# Prints one JSON line per run and the per-epoch speed ratio torch_time / darlc_time (bar: >= 0.8).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}; T=${THREADS:-2}; EP=${EPOCHS:-3}
SPOTS=${SPOTS:-4000}; GENES=${GENES:-15000}
DIR=$(mktemp -d); trap 'rm -rf "$DIR"' EXIT
cargo build --release --example gat_bench >&2
BIN=target/release/examples/gat_bench
$BIN --spots "$SPOTS" --genes "$GENES" --epochs "$EP" --threads "$T" --form auto --export "$DIR" | tee "$DIR/darlc_auto.json"
$BIN --spots "$SPOTS" --genes "$GENES" --epochs "$EP" --threads "$T" --form direct | tee "$DIR/darlc_direct.json"
$PY benches/gat_torch.py --data "$DIR" --epochs "$EP" --threads "$T" | tee "$DIR/torch.json"
$PY benches/gat_torch.py --data "$DIR" --epochs "$EP" --threads "$T" --gram | tee "$DIR/torch_gram.json"
$PY - "$DIR" <<'PYEOF'
import json, sys, os
d = sys.argv[1]
r = {k: json.load(open(os.path.join(d, k + ".json"))) for k in ["darlc_auto", "darlc_direct", "torch", "torch_gram"]}
t = r["torch"]["sec_per_epoch_median"]
for k in ["darlc_auto", "darlc_direct", "torch_gram"]:
    s = r[k]["sec_per_epoch_median"]
    print(f"# {k}: {s:.3f} s/epoch, peak RSS {r[k]['peak_rss_mb']:.0f} MB; torch(direct) {t:.3f} s/epoch, "
          f"{r['torch']['peak_rss_mb']:.0f} MB; ratio torch/{k} = {t / s:.2f}")
la, lt = r["darlc_auto"]["losses"], r["torch"]["losses"]
print("# first losses darlc", la[:3], "torch", lt[:3],
      "max rel diff", max(abs(a - b) / abs(b) for a, b in zip(la, lt)))
PYEOF
