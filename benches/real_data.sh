#!/usr/bin/env bash
# Real-data evidence of issue 23 (items 3a-3c): gene families, anatomical coherence against the
# baselines and Hotspot, and the paper's ablations, on the sections of ../shared/data.
#
#   benches/real_data.sh                 # everything, in priority order, resumable
#   SECTIONS="dlpfc" SEEDS="0" benches/real_data.sh      # a subset
#   ONLY=score benches/real_data.sh     # only (re)score and (re)build the tables
#
# Every darlc run goes to $OUT/<section>/seed<S>/<row>/ and is skipped when its run.json (written
# last by darlc) exists, so an interrupted script resumes where it stopped; a row being run by
# another instance (<row>.lock holds a live pid) is skipped too, so two instances can share the
# work. Each run is timed by GNU time (<row>.time: wall, peak RSS) with the load average before
# and after (<row>.load).
#
# Python (3.11 used): numpy scipy pandas scikit-learn igraph leidenalg hotspotsc, e.g.
#   pip install --user numpy scipy pandas scikit-learn igraph leidenalg hotspotsc
# (2026-12-07: numpy 2.4.6, scipy 1.17.1, pandas 2.3.3, scikit-learn 1.9.1, igraph 1.0.0,
#  leidenalg 0.12.0, hotspotsc 1.1.3, anndata 0.12.19).
#
# Self-checks of the scorer: python3 benches/real_data/test_score.py
#
# Settings (environment):
#   OUT       output folder (default out_real_data; /out*/ is git-ignored)
#   SEEDS     seeds (default "0 1 2")
#   SECTIONS  sections in priority order (default "dlpfc mob bc1"; bc1 = breast cancer layer 1)
#   PRESET    darlc preset (default recommended, the default of `darlc run`); PRESET_dlpfc,
#             PRESET_mob, PRESET_bc1 override it for one section
#   CONFIG_dlpfc, CONFIG_mob, CONFIG_bc1  darlc config file(s) on top of the preset, several
#             joined by ':' and merged in order (default none); e.g. the old `--preset fast`
#             with benches/small_section.json is PRESET_dlpfc=paper
#             CONFIG_dlpfc=benches/fast_epochs.json:benches/small_section.json
#   One OUT folder should hold one setting: a finished run is never redone, whatever the config.
#   ROWS      rows to run (default: all of full kmeans gmm-pca kmeans-std gmm-pca-std c1 gks
#             no_clr gmm no_lh no_size no_pretrain; the -std rows are the baselines on
#             standardised images); runs already present are scored whatever ROWS says
#   ABLATIONS "1" to run the Table 4 ablations on dlpfc (default 1)
#   THREADS   darlc threads (default 2)     DARLC  the binary (default target/release/darlc)
#   DARLC_SHARED  folder holding data/ (default ../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out_real_data}
SEEDS=${SEEDS:-"0 1 2"}
SECTIONS=${SECTIONS:-"dlpfc mob bc1"}
PRESET=${PRESET:-recommended}
for sec in dlpfc mob bc1; do
  v=PRESET_$sec; [ -n "${!v:-}" ] || printf -v "$v" %s "$PRESET"
  v=CONFIG_$sec; [ -n "${!v:-}" ] || printf -v "$v" %s ""
done
ABLATIONS=${ABLATIONS:-1}
ROWS=${ROWS:-"full kmeans gmm-pca kmeans-std gmm-pca-std c1 gks no_clr gmm no_lh no_size no_pretrain"}
THREADS=${THREADS:-2}
DARLC=${DARLC:-target/release/darlc}
export DARLC_SHARED=${DARLC_SHARED:-$(cd .. && pwd)/shared}
PY=benches/real_data
mkdir -p "$OUT/configs"

input_of() {
  case $1 in
    dlpfc) echo "$DARLC_SHARED/data/dlpfc_151673_despace500" ;;
    mob) echo "$DARLC_SHARED/data/mob_st_rep11" ;;
    bc1) echo "$DARLC_SHARED/data/breast_cancer_st_layers1to4" ;;
  esac
}
opts_of() { [ "$1" = bc1 ] && echo "--section 1 --coords bin" || true; }

# The JSON overlay of each row (on top of $CONFIG); baselines are a --method.
overlay_of() {
  case $1 in
    full | kmeans | gmm-pca) echo '{}' ;;
    kmeans-std | gmm-pca-std) echo '{"image_scale": "standardize"}' ;; # baselines on standardised images
    c1) echo '{"ablations": {"no_smm": true}}' ;;           # DARLC-C1 = w/o SMM (k-means on h)
    gks) echo '{"smoothing": {"method": "gks"}}' ;;         # GAT -> GKS (the views without GAT)
    no_clr) echo '{"ablations": {"no_clr": true}}' ;;
    gmm) echo '{"ablations": {"gmm": true}}' ;;
    no_lh) echo '{"ablations": {"no_lh": true}}' ;;
    no_size) echo '{"ablations": {"no_size": true}}' ;;
    no_pretrain) echo '{"module1": {"warmup_epochs": 0}}' ;;
  esac
}

config_of() { # section row: the merged config file of a row
  local f="$OUT/configs/$1-$2.json" base="CONFIG_$1"
  python3 - "${!base}" "$(overlay_of "$2")" "$f" <<'PYEOF'
import json, sys
def merge(a, b):
    for k, v in b.items():
        a[k] = merge(a.get(k, {}), v) if isinstance(v, dict) else v
    return a
base = {}
for f in filter(None, sys.argv[1].split(":")):
    base = merge(base, json.load(open(f)))
json.dump(merge(base, json.loads(sys.argv[2])), open(sys.argv[3], "w"), indent=1)
PYEOF
  echo "$f"
}

run_row() { # section seed row
  local sec=$1 seed=$2 row=$3
  local dir="$OUT/$sec/seed$seed/$row"
  if [ -f "$dir/run.json" ]; then return 0; fi
  [ "${ONLY:-}" = score ] && return 0
  [[ " $ROWS " == *" $row "* ]] || return 0
  # Another instance of this script (or its orphaned darlc) holds the row: its pid is in .lock.
  if [ -f "$dir.lock" ] && kill -0 "$(cat "$dir.lock")" 2>/dev/null; then
    echo "== $sec seed $seed $row: running elsewhere (pid $(cat "$dir.lock")), skipped"; return 0
  fi
  mkdir -p "$dir"
  echo $$ > "$dir.lock"
  local method=darlc
  case $row in kmeans | gmm-pca) method=$row ;; kmeans-std | gmm-pca-std) method=${row%-std} ;; esac
  local cfg pv="PRESET_$sec"
  local preset=${!pv}
  cfg=$(config_of "$sec" "$row")
  echo "== $sec seed $seed $row ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  cut -d' ' -f1-3 /proc/loadavg > "$dir.load"
  # shellcheck disable=SC2046
  if ! /usr/bin/time -v -o "$dir.time" nice -n 10 "$DARLC" run --input "$(input_of "$sec")" $(opts_of "$sec") \
      --out "$dir" --preset "$preset" --config "$cfg" --method "$method" --seed "$seed" \
      --threads "$THREADS" > "$dir.log" 2>&1; then
    echo "   FAILED, see $dir.log"; tail -3 "$dir.log"; rm -f "$dir.lock"; return 0
  fi
  cut -d' ' -f1-3 /proc/loadavg >> "$dir.load"
  rm -f "$dir.lock"
  echo "   $(grep -E 'Elapsed|Maximum resident' "$dir.time" | sed 's/^\s*//' | tr '\n' ' ')"
}

hotspot_of() { # section
  local dir="$OUT/$1/hotspot"
  [ -f "$dir/hotspot.json" ] && return 0
  [ "${ONLY:-}" = score ] && return 0
  mkdir -p "$dir"
  echo "== $1 hotspot ($(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -v -o "$dir.time" nice -n 10 python3 "$PY/hotspot_modules.py" "$1" "$dir" > "$dir.log" 2>&1 \
    || { echo "   FAILED, see $dir.log"; tail -3 "$dir.log"; }
}

score() { # section seed
  local sec=$1 seed=$2 d="$OUT/$1/seed$2" runs=()
  for r in full kmeans gmm-pca kmeans-std gmm-pca-std c1 gks no_clr gmm no_lh no_size no_pretrain; do
    [ -f "$d/$r/run.json" ] && runs+=("$d/$r")
  done
  [ ${#runs[@]} -eq 0 ] && return 0
  local hs=()
  [ -f "$OUT/$sec/hotspot/hotspot.json" ] && hs=(--hotspot "$OUT/$sec/hotspot")
  local pca=() r
  for r in full gmm-pca kmeans; do # every run stores the same images
    if [ -f "$d/$r/run.json" ]; then pca=(--pca-from "$d/$r"); break; fi
  done
  python3 "$PY/score.py" "$sec" "${runs[@]}" "${hs[@]}" "${pca[@]}" --seed "$seed" --out "$d/scores.json" 2> "$d/scores.log" \
    || { echo "   scoring $sec seed $seed FAILED, see $d/scores.log"; tail -3 "$d/scores.log"; }
}

[ -x "$DARLC" ] || { echo "build first: cargo build --release --locked" >&2; exit 1; }
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
stage() { # section "rows": every seed's rows, then its scores
  want "$1" || return 0
  for seed in $SEEDS; do
    for row in $2; do run_row "$1" "$seed" "$row"; done
    score "$1" "$seed"
  done
}
# Priority order (issue 23's compute plan): DLPFC (DARLC, both baselines, Hotspot), MOB (with
# DARLC-C1 and the GKS views for the families), the Table 4 ablations on DLPFC, breast cancer.
want dlpfc && hotspot_of dlpfc
stage dlpfc "full kmeans gmm-pca kmeans-std gmm-pca-std"
want mob && hotspot_of mob
stage mob "full kmeans gmm-pca kmeans-std gmm-pca-std c1 gks"
[ "$ABLATIONS" = 1 ] && stage dlpfc "c1 gks no_clr gmm no_lh no_size no_pretrain"
want bc1 && hotspot_of bc1 # no layers: only its autocorrelation is used (the patterned family members)
stage bc1 "full kmeans gmm-pca kmeans-std gmm-pca-std c1 gks"
python3 "$PY/tables.py" "$OUT" > "$OUT/tables.md"
echo "tables: $OUT/tables.md"
