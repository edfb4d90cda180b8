"""Hotspot gene modules (DeTomaso & Yosef 2021, `hotspotsc`) on one section, the reference that
issue 23 asks darlc's clusters to be compared with.

DANB model on the raw counts (size factor: the spot's total over the matrix), a spatial kNN graph
on the spot coordinates (30 neighbours, Hotspot's default; exact, so that reruns agree: the default
approximate search gave 64 and then 67 genes at FDR < 0.05 on DLPFC), spatial autocorrelation per gene, genes
with FDR < 0.05 kept (at most --max-genes of them, highest Z first), local correlations, and
`create_modules(min_gene_threshold, fdr_threshold=0.05)` with min_gene_threshold
= min(20, max(5, genes correlated // 10)) unless given (Hotspot's default 20 left one module of
27 genes on DLPFC's 64 significant genes).

Writes OUT/modules.csv (gene_id,symbol,module; module -1 = not assigned), OUT/autocorrelation.csv
and OUT/hotspot.json (parameters, versions, counts, seconds), the latter last.

usage: python3 hotspot_modules.py SECTION OUT [--min-genes N] [--max-genes 2000] [--jobs 1]
"""
import argparse
import json
import os
import sys
import time

import anndata
import hotspot
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))
from common import Section  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("section")
    ap.add_argument("out")
    ap.add_argument("--min-genes", type=int, default=None)
    ap.add_argument("--max-genes", type=int, default=2000)
    ap.add_argument("--neighbors", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    done = os.path.join(a.out, "hotspot.json")
    if os.path.exists(done):
        os.remove(done)
    t0 = time.time()
    s = Section(a.section)
    x = s.counts.T.tocsc()  # spots x genes
    detected = np.asarray((x > 0).sum(axis=0)).ravel()
    keep = np.flatnonzero(detected > 0)
    ad = anndata.AnnData(X=x[:, keep].tocsc())
    ad.var_names = [s.ids[i] for i in keep]
    ad.obs_names = s.barcodes
    ad.obsm["spatial"] = s.coords
    ad.obs["total_counts"] = np.asarray(x.sum(axis=1)).ravel()
    hs = hotspot.Hotspot(ad, model="danb", latent_obsm_key="spatial", umi_counts_obs_key="total_counts")
    hs.create_knn_graph(weighted_graph=False, n_neighbors=a.neighbors, approx_neighbors=False)
    auto = hs.compute_autocorrelations(jobs=a.jobs)
    auto.to_csv(os.path.join(a.out, "autocorrelation.csv"))
    sig = auto.loc[auto.FDR < 0.05].sort_values("Z", ascending=False)
    genes = sig.index[: a.max_genes]
    t1 = time.time()
    hs.compute_local_correlations(genes, jobs=a.jobs)
    if a.min_genes is None:  # Hotspot's default 20, smaller for short lists (64 genes on DLPFC)
        a.min_genes = min(20, max(5, len(genes) // 10))
    mods = hs.create_modules(min_gene_threshold=a.min_genes, core_only=True, fdr_threshold=0.05)
    sym = {g: s.symbols[s.row_of_id[g]] for g in ad.var_names}
    df = pd.DataFrame({"gene_id": mods.index, "symbol": [sym[g] for g in mods.index], "module": mods.to_numpy(int)})
    df.to_csv(os.path.join(a.out, "modules.csv"), index=False)
    n_mod = len(set(df.module) - {-1})
    info = {
        "section": a.section,
        "genes_in": int(len(keep)),
        "genes_fdr_0.05": int(len(sig)),
        "genes_correlated": int(len(genes)),
        "modules": n_mod,
        "genes_assigned": int((df.module != -1).sum()),
        "params": {"model": "danb", "n_neighbors": a.neighbors, "weighted_graph": False, "approx_neighbors": False,
                   "min_gene_threshold": a.min_genes, "max_genes": a.max_genes, "fdr": 0.05, "core_only": True},
        "versions": {"hotspotsc": getattr(hotspot, "__version__", "?"), "anndata": anndata.__version__,
                     "numpy": np.__version__, "pandas": pd.__version__},
        "seconds": {"autocorrelation": round(t1 - t0, 1), "modules": round(time.time() - t1, 1)},
    }
    json.dump(info, open(done, "w"), indent=1)
    print(json.dumps(info))


if __name__ == "__main__":
    main()
