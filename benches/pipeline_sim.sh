#!/usr/bin/env bash
# Full-size pipeline benchmark (issue 6 item 8, and the quality table of item 7): simulate a
# section with `darlc simulate` (15,000 genes by default), run `darlc run` (DARLC, paper preset
# unless CONFIG overrides it) and both baselines on it, then print
#   - wall time per phase (run.json) and per joint-epoch step (log.jsonl `timing`),
#   - peak RSS of each run (GNU time),
#   - NMI / ARI against the simulated patterns and DBIE / DBIP (metrics.json).
#
# Usage: benches/pipeline_sim.sh [OUT_DIR]
# Env:   GENES=15000 SEED=0 THREADS=2 CONFIG=file.json (keys override the preset, DARLC only)
#        PRESET=paper METHODS="darlc kmeans gmm-pca"
#        CLUSTERS=14 (passed as --clusters to every method; default: the ST rule round(N/30);
#        14 = the simulated patterns incl. noise, for comparing the methods at the true K)
# The paper preset on 15,000 genes takes hours on 2 cores; for per-phase rates a config such as
# {"module1":{"warmup_epochs":2},"module2":{"joint_epochs":2}} is enough (per-epoch times scale
# linearly with the epoch counts).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-$(mktemp -d)}"
GENES="${GENES:-15000}"; SEED="${SEED:-0}"; T="${THREADS:-2}"; PRESET="${PRESET:-paper}"
METHODS="${METHODS:-darlc kmeans gmm-pca}"
[ -x /usr/bin/time ] || { echo "needs GNU time (/usr/bin/time) for peak RSS" >&2; exit 1; }
cargo build --release --locked --quiet
BIN=./target/release/darlc
mkdir -p "$OUT"
SIM="$OUT/sim"
[ -d "$SIM/outs" ] || $BIN simulate --genes "$GENES" --seed "$SEED" --out "$SIM"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for m in $METHODS; do
  args=(run --input "$SIM" --out "$OUT/$m" --method "$m" --preset "$PRESET" --threads "$T")
  # CONFIG tunes DARLC; the baselines keep the preset's values (a config's EM cap and `dim`
  # would otherwise reach GMM-PCA too: large_section.json's cap of 50 moves it at K 500 from
  # 0.584 / 0.116 to 0.581 / 0.099).
  [ -n "${CONFIG:-}" ] && [ "$m" = darlc ] && args+=(--config "$CONFIG")
  [ -n "${CLUSTERS:-}" ] && args+=(--clusters "$CLUSTERS")
  /usr/bin/time -v "$BIN" "${args[@]}" 2> "$OUT/$m.log" > /dev/null
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$OUT" $METHODS <<'PYEOF'
import json, os, re, sys
out, methods = sys.argv[1], sys.argv[2:]
def rss_gb(log):
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(log).read())
    return int(m.group(1)) / 1e6 if m else float("nan")
def wall(log):
    m = re.search(r"Elapsed \(wall clock\) time.*: (\S+)", open(log).read())
    return m.group(1) if m else "?"
for m in methods:
    d = os.path.join(out, m)
    run = json.load(open(os.path.join(d, "run.json")))
    met = json.load(open(os.path.join(d, "metrics.json")))
    print(f"## {m}: wall {wall(d + '.log')}, peak RSS {rss_gb(d + '.log'):.2f} GB, "
          f"K {run['clusters']}, threads {run['threads']}")
    for p in run["phases"]:
        print(f"   phase {p['name']:<12} {p['seconds']:9.1f} s")
    log = os.path.join(d, "log.jsonl")
    if os.path.exists(log):
        recs = [json.loads(l) for l in open(log) if l.strip()]
        for ph in ["warm-up", "joint"]:
            rs = [r for r in recs if r.get("phase") == ph]
            if rs:
                s = sorted(r["seconds"] for r in rs)
                print(f"   {ph}: {len(rs)} epochs, median {s[len(s) // 2]:.1f} s/epoch")
        j = [r["timing"] for r in recs if r.get("phase") == "joint" and "timing" in r]
        if j:
            parts = {k: sorted(t[k] for t in j)[len(j) // 2] for k in j[0]}
            print("   joint epoch steps (median s): " +
                  ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
        for r in recs:
            if r.get("phase") in ("smm-init", "joint", "final") and "nmi_truth" in r:
                print(f"   {r['phase']:<8} epoch {r.get('epoch', '-')}: clusters used "
                      f"{r.get('clusters_used')}, NMI {r['nmi_truth']:.3f}")
    g = lambda k, p: "-" if met.get(k) is None else f"{met[k]:.{p}f}"
    print(f"   NMI {g('nmi', 3)}  ARI {g('ari', 3)}  DBIE {g('dbie', 2)}  DBIP {g('dbip', 2)}")
PYEOF
