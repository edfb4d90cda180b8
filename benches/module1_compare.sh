#!/usr/bin/env bash
# Side-by-side CPU benchmark of one Module I warm-up step (SPEC §4; 75×75, p 5, D 64, 4 blocks,
# 4 heads, B 256, f32, 2 threads): darlc `bench ssl-step` vs the PyTorch peer
# ../shared/peer/darlc_module1_torch.py, run back to back on the same machine; prints both median
# images/s and the ratio darlc / PyTorch (bar: ≥ 1.0).
#
# Usage: benches/module1_compare.sh [STEPS]   (env: PY=python with torch, PEER=peer script)
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-5}"
PY="${PY:-python3}"
PEER="${PEER:-../shared/peer/darlc_module1_torch.py}"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
cargo build --release --locked --quiet
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
./target/release/darlc bench ssl-step --batch 256 --img 75 --patch 5 --dim 64 \
  --threads 2 --warmup 2 --steps "$STEPS" --out "$TMP/darlc.jsonl"
"$PY" "$PEER" --patch 5 --dim 64 --batch 256 --mode train --threads 2 --warmup 2 \
  --steps "$STEPS" --out "$TMP/torch.jsonl" > "$TMP/torch.stdout"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$TMP/darlc.jsonl" "$TMP/torch.jsonl" <<'PYEOF'
import json, sys
last = lambda p: json.loads([l for l in open(p) if l.strip()][-1])
d, t = last(sys.argv[1]), last(sys.argv[2])
dm, tm = d["img_s_med"], t["img_s_med"]
print(f"darlc   median {dm:8.1f} img/s   peak RSS {d.get('peak_rss_mb', float('nan')):.0f} MB")
print(f"PyTorch median {tm:8.1f} img/s   peak RSS {t.get('peak_rss_mb', float('nan'))} MB")
print(f"ratio darlc / PyTorch = {dm / tm:.2f}x")
PYEOF
