"""Gather finished darlc runs into one table and one summary page (workflow/Snakefile, rule gather).

For every run folder (the folder of its run.json) one row: the section and seed, what ran (preset,
method, threads, darlc version), the data (images, K), the clusters actually used (from
clusters.csv), the wall time of every phase and the peak RSS (run.json), and the scores
(metrics.json: DBIE, DBIP, SAM; NMI, ARI, ACC, homogeneity, completeness when labels were known).

In the workflow Snakemake calls it with `snakemake.input.runs` (run.json paths). By hand:

    python3 workflow/scripts/gather.py --tsv summary.tsv --md summary.md RUN_DIR...

Only the Python standard library is used.
"""

import argparse
import csv
import json
import os
import sys

SCORES = ["dbie", "dbip", "sam", "nmi", "ari", "acc", "homogeneity", "completeness"]
NA = "NA"
HEAD = ["section", "seed", "preset", "method", "threads", "images", "k", "clusters_used",
        "smallest_cluster", "largest_cluster", "seconds_total"]
TAIL = ["peak_rss_mb", *SCORES, "darlc_version", "input", "run_dir"]


def run_row(run_json):
    """One table row (a dict) of the run whose run.json is `run_json`."""
    folder = os.path.dirname(os.path.abspath(run_json))
    with open(run_json) as f:
        rj = json.load(f)
    if rj.get("complete") is not True:
        raise ValueError(f"{run_json}: not a complete run (`complete` is not true)")
    metrics_path = os.path.join(folder, "metrics.json")
    with open(metrics_path) as f:
        metrics = json.load(f)
    sizes = {}
    with open(os.path.join(folder, "clusters.csv"), newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or "cluster" not in reader.fieldnames:
            raise ValueError(f"{folder}/clusters.csv: no `cluster` column")
        for row in reader:
            sizes[row["cluster"]] = sizes.get(row["cluster"], 0) + 1
    seed_dir = os.path.basename(folder)
    section = os.path.basename(os.path.dirname(folder))
    cfg = rj.get("config", {})
    phases = rj.get("phases", [])
    rss = [p["peak_rss_mb"] for p in phases if p.get("peak_rss_mb") is not None]
    row = {
        "section": section,
        "seed": cfg.get("seed", seed_dir.removeprefix("seed")),
        "preset": preset_of(rj.get("command", [])),
        "method": cfg.get("method", NA),
        "threads": rj.get("threads", NA),
        "images": rj.get("images", NA),
        "k": rj.get("clusters", NA),
        "clusters_used": len(sizes),
        "smallest_cluster": min(sizes.values()) if sizes else NA,
        "largest_cluster": max(sizes.values()) if sizes else NA,
        "seconds_total": total_seconds(phases),
        "peak_rss_mb": max(rss) if rss else NA,
    }
    for s in SCORES:
        v = metrics.get(s)
        row[s] = NA if v is None else v
    row["darlc_version"] = rj.get("darlc_version", NA)
    row["input"] = rj.get("input", NA)
    row["run_dir"] = folder
    return row, phase_seconds(phases)


def phase_seconds(phases):
    """`(column, seconds)` of every phase: `load`, `method` (the method's whole time, whatever
    its name), `outputs`, and the method's own phases under their names."""
    out = []
    for i, p in enumerate(phases):
        name = p["name"]
        if i == 1 and phases[0]["name"] == "load" and name not in ("load", "outputs"):
            name = "method"
        out.append((f"seconds_{name}", p.get("seconds", 0.0)))
    return out


def total_seconds(phases):
    """Wall time of the run. run.json lists `load`, the method (`darlc`, `kmeans`, ...), the
    method's own phases (`smoothing`, `warm-up`, ...: parts of the method's time), `outputs`."""
    top = [p for p in phases if p["name"] in ("load", "outputs")]
    if len(phases) >= 2 and phases[0]["name"] == "load":
        top.append(phases[1])
    else:  # an unknown layout: every phase once
        top = phases
    return sum(p.get("seconds", 0.0) for p in top)


def preset_of(command):
    """The `--preset` value of the recorded command line (darlc's default is `paper`)."""
    for i, a in enumerate(command):
        if a == "--preset" and i + 1 < len(command):
            return command[i + 1]
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
    return "paper"


def fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.1f}"
    return str(v)


def gather(run_jsons, tsv, md):
    rows, phase_names = [], ["seconds_load", "seconds_method", "seconds_outputs"]
    for rj in run_jsons:
        row, phases = run_row(rj)
        for key, secs in phases:
            if key not in phase_names:
                phase_names.append(key)
            row[key] = row.get(key, 0.0) + secs
        rows.append(row)
    rows.sort(key=lambda r: (r["section"], int(r["seed"])))
    columns = HEAD + phase_names + TAIL
    os.makedirs(os.path.dirname(os.path.abspath(tsv)), exist_ok=True)
    tmp = tsv + ".tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(columns)
        for r in rows:
            w.writerow([fmt(r.get(c, NA)) for c in columns])
    os.replace(tmp, tsv)
    tmp = md + ".tmp"
    with open(tmp, "w") as f:
        f.write(page(rows, phase_names))
    os.replace(tmp, md)
    return rows


def page(rows, phase_names):
    """The summary page (Markdown)."""
    out = ["# darlc runs", ""]
    sections = sorted({r["section"] for r in rows})
    total_h = sum(r["seconds_total"] for r in rows) / 3600
    out.append(f"{len(rows)} runs of {len(sections)} sections, {total_h:.2f} h of run time in "
               f"total; every value below is in `summary.tsv`.")
    out.append("")
    cols = ["section", "seed", "preset", "method", "images", "k", "clusters_used",
            "seconds_total", "peak_rss_mb", *SCORES]
    out.append("| " + " | ".join(cols) + " |")
    out.append("|" + "---|" * len(cols))
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(c, NA)) for c in cols) + " |")
    out.append("")
    out.append("## Seconds per phase")
    out.append("")
    names = [p.removeprefix("seconds_") for p in phase_names]
    out.append("| section | seed | " + " | ".join(names) + " |")
    out.append("|---|---|" + "---|" * len(names))
    for r in rows:
        out.append(f"| {r['section']} | {r['seed']} | "
                   + " | ".join(fmt(r.get(p, NA)) for p in phase_names) + " |")
    out.append("")
    merged = [r for r in rows
              if isinstance(r["k"], int) and r["clusters_used"] < r["k"] / 2]
    if merged:
        out.append("## Runs that used fewer than half of their K clusters")
        out.append("")
        out.append("The mixture merged components (README, \"When clusters merge\"):")
        out.append("")
        for r in merged:
            out.append(f"- {r['section']} seed {r['seed']}: {r['clusters_used']} of {r['k']}")
        out.append("")
    return "\n".join(out)


def main():
    if "snakemake" in globals():
        sm = globals()["snakemake"]
        with open(sm.log[0], "w") as log:
            rows = gather(list(sm.input.runs), sm.output.tsv, sm.output.md)
            log.write(f"gathered {len(rows)} runs into {sm.output.tsv} and {sm.output.md}\n")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tsv", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("runs", nargs="+", help="run folders (or their run.json)")
    a = ap.parse_args()
    runs = [r if r.endswith(".json") else os.path.join(r, "run.json") for r in a.runs]
    rows = gather(runs, a.tsv, a.md)
    print(f"gathered {len(rows)} runs into {a.tsv} and {a.md}", file=sys.stderr)


main()
