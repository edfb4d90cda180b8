"""Score darlc run folders on a real section (issue 23, items 3a-3c).

  python3 score.py SECTION RUN_DIR [RUN_DIR ...] --out JSON [--hotspot HOTSPOT_DIR] [--seed S]
                   [--pca-from RUN_DIR]

For every run folder (its name is the row name) it writes:
* families (paper §4.3.2; only sections with at least 2 families of at least 2 genes among the
  run's genes): for each embedding the run holds (`z`, `h`) Leiden on a 5-NN graph (Euclidean,
  unweighted, modularity, leidenalg) of min(5, family size) genes drawn per family, 20 draws,
  NMI and ARI against the family (mean over the draws); and retrieval over all of the run's
  genes: per family gene the share of its 5 nearest genes (Euclidean) in its family, averaged
  over family genes (`retrieval`) and over families (`retrieval_macro`), with the chance level.
* coherence (sections with layer labels): per gene the centred per-layer mean of log-normalised
  expression (common.Section.layer_profiles); per cluster the mean pairwise Pearson correlation
  of its genes' profiles, averaged over clusters of >= 2 genes weighted by size; and the same for
  200 shuffles of the labels (same sizes). On all scorable genes and on Hotspot's assigned genes.
* kmeans_at_k (sections with layer labels): coherence of k-means (one start) at the run's K on
  each embedding the run holds, beside the run's own labels.
* dbie, dbip, clusters_used from the run's metrics.json / clusters.csv.
* families_no_rpl: the same without the RPL family; families_patterned (with --hotspot): the
  same with only the family genes Hotspot finds spatially autocorrelated (FDR < 0.05) drawn for
  Leiden and asked for neighbours (a neighbour is a hit if it is in the family at all).
`--pca-from RUN` adds the row `level and detection` (families only: each gene as its z-scored
log image mean and share of non-zero pixels, a reference that knows no pattern), and the rows
`PCA raw`, `PCA max-scaled` and `PCA standardized`: PCA (module2.dim components) of the run's
images as stored (images.safetensors), of each image divided by its maximum, and of each image
centred and scaled over the tissue pixels (darlc's `standardize`).
With --hotspot, Hotspot's own modules are scored too (row `Hotspot`), and every embedding
(`z`, `h`, the PCAs, and the raw images of the --pca-from run) is also clustered on Hotspot's genes
alone by k-means (scikit-learn, 10 starts) with K = Hotspot's number of modules (`matched_k`):
coherence grows as clusters shrink, so only this column compares with Hotspot's few modules.
"""
import argparse
import json
import os
import re
import sys

import igraph as ig
import leidenalg
import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, os.path.dirname(__file__))
from common import Run, Section  # noqa: E402

K_NN = 5
DRAWS = 20
PER_FAMILY = 5
SHUFFLES = 200
# The families scored a second time without the ribosomal proteins: on MOB and breast cancer they
# are most of the family genes (48 of 74, 51 of 70) and share a level more than a pattern.
NO_RPL = ("RPL",)


def family_of_symbol(s):
    """darlc's built-in family rules (src/eval/families.rs), ported."""
    if s.startswith("HLA-") or s.startswith("H2-"):
        return "HLA"
    if re.fullmatch(r"GABR[A-Z][0-9]*", s) or re.fullmatch(r"Gabr[a-z][0-9]*", s):
        return "GABR"
    if s.startswith("GABR") or s.startswith("Gabr"):
        return None
    if re.fullmatch(r"RPLP[012]", s) or re.fullmatch(r"Rplp[012]", s):
        return "RPL"
    if re.fullmatch(r"RPL[0-9]+(A|L|AL|L1)?", s) or re.fullmatch(r"Rpl[0-9]+(a|l|al|l1)?", s):
        return "RPL"
    if re.fullmatch(r"MT[1-4][A-Z]?", s) or re.fullmatch(r"Mt[1-4]", s):
        return "MT"
    return None


def family_fields(embs, symbols, seed, members=None):
    """The family tables of each embedding in `embs` (name -> [genes, d]): as specified
    (`families`), without RPL (`families_no_rpl`) and, given `members` (a boolean per gene),
    with only those members drawn and asked (`families_patterned`)."""
    out = {"families": {k: family_scores(x, symbols, seed) for k, x in embs.items()},
           "families_no_rpl": {k: family_scores(x, symbols, seed, NO_RPL) for k, x in embs.items()}}
    if members is not None:
        out["families_patterned"] = {k: family_scores(x, symbols, seed, members=members) for k, x in embs.items()}
    return out


def leiden_labels(x, seed):
    k = min(K_NN, len(x) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, idx = nn.kneighbors(x)
    edges = {(min(i, j), max(i, j)) for i in range(len(x)) for j in idx[i, 1:] if i != j}
    g = ig.Graph(n=len(x), edges=sorted(edges))
    p = leidenalg.find_partition(g, leidenalg.ModularityVertexPartition, seed=seed)
    return np.array(p.membership)


def family_scores(x, symbols, seed, exclude=(), members=None):
    """Leiden and retrieval scores of the families; families in `exclude` count as no family.
    With `members` (a boolean per gene) only those genes are drawn for Leiden and asked for
    their neighbours; a neighbour still counts as a hit if it is in the family at all."""
    fam = np.array([None if f in exclude else f for f in map(family_of_symbol, symbols)], dtype=object)
    drawn = fam if members is None else np.where(np.asarray(members, dtype=bool), fam, None)
    all_sizes = {f: int((fam == f).sum()) for f in sorted(set(fam) - {None})}
    sizes = {f: int((drawn == f).sum()) for f in all_sizes}
    usable = [f for f, n in sizes.items() if n >= 2]
    if len(usable) < 2:
        return {"family_sizes": sizes, "skipped": "fewer than 2 families with >= 2 genes"}
    rng = np.random.default_rng(seed)
    nmis, aris = [], []
    for d in range(DRAWS):
        rows, y = [], []
        for f in usable:
            pool = np.flatnonzero(drawn == f)
            pick = rng.choice(pool, size=min(PER_FAMILY, len(pool)), replace=False)
            rows.extend(pick)
            y.extend([f] * len(pick))
        lab = leiden_labels(x[rows], seed=d)
        nmis.append(normalized_mutual_info_score(y, lab))
        aris.append(adjusted_rand_score(y, lab))
    # Retrieval over all genes.
    nn = NearestNeighbors(n_neighbors=K_NN + 1).fit(x)
    fam_rows = np.flatnonzero(np.isin(drawn, usable))
    _, idx = nn.kneighbors(x[fam_rows])
    share, chance, per_fam = [], [], {f: [] for f in usable}
    n = len(x)
    for r, nb in zip(fam_rows, idx):
        nb = [j for j in nb if j != r][:K_NN]
        s = float(np.mean(fam[nb] == fam[r]))
        share.append(s)
        per_fam[fam[r]].append(s)
        chance.append((all_sizes[fam[r]] - 1) / (n - 1))
    return {
        "family_sizes": sizes,
        "family_sizes_all": all_sizes,
        "families_used": usable,
        "leiden_nmi": float(np.mean(nmis)),
        "leiden_nmi_sd": float(np.std(nmis)),
        "leiden_ari": float(np.mean(aris)),
        "leiden_ari_sd": float(np.std(aris)),
        "retrieval": float(np.mean(share)),
        "retrieval_macro": float(np.mean([np.mean(v) for v in per_fam.values()])),
        "retrieval_per_family": {f: float(np.mean(v)) for f, v in per_fam.items()},
        "retrieval_chance": float(np.mean(chance)),
    }


def coherence(labels, unit_prof, rng):
    """Size-weighted mean within-cluster correlation; `unit_prof` rows are unit vectors."""

    def score(lab):
        tot, w = 0.0, 0
        for c in np.unique(lab):
            m = lab == c
            n = int(m.sum())
            if n < 2:
                continue
            s = unit_prof[m].sum(axis=0)
            tot += n * (float(s @ s) - n) / (n * (n - 1))
            w += n
        return tot / w if w else float("nan")

    obs = score(labels)
    sh = [score(rng.permutation(labels)) for _ in range(SHUFFLES)]
    return {"coherence": obs, "shuffled": float(np.mean(sh)), "shuffled_sd": float(np.std(sh)),
            "genes": int(len(labels)), "clusters": int(len(np.unique(labels)))}


class Profiles:
    def __init__(self, sec):
        prof, self.layers = sec.layer_profiles()
        norm = np.linalg.norm(prof, axis=1)
        self.ok = norm > 0
        self.unit = prof / np.where(self.ok, norm, 1)[:, None]
        self.row_of_id = sec.row_of_id

    def rows(self, gene_ids):
        r = np.array([self.row_of_id.get(g, -1) for g in gene_ids])
        return r, (r >= 0) & self.ok[np.maximum(r, 0)]


def score_clusters(labels, gene_ids, prof, hs_genes, seed):
    rows, ok = prof.rows(gene_ids)
    out = {"all": coherence(labels[ok], prof.unit[rows[ok]], np.random.default_rng(seed)),
           "unscorable_genes": int((~ok).sum())}
    if hs_genes is not None:
        m = ok & np.isin(np.array(gene_ids), list(hs_genes))
        out["hotspot_genes"] = coherence(labels[m], prof.unit[rows[m]], np.random.default_rng(seed))
    return out


def encodes(x, images, gene_ids, prof):
    """What an embedding encodes (issue 23, item 4): 5-fold cross-validated R² of a linear map
    from the embedding to each gene's level (log of the image mean), detection rate (share of
    non-zero pixels) and, where layers are known, its centred layer profile (pattern)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import cross_val_score

    def r2(y, xx=x):
        return float(np.mean(cross_val_score(LinearRegression(), xx, y, cv=5, scoring="r2")))

    flat = images.reshape(len(images), -1).astype(np.float64)
    out = {"level": r2(np.log(flat.mean(axis=1) + 1e-9)), "detection": r2((flat > 0).mean(axis=1))}
    if prof is not None:
        rows, ok = prof.rows(gene_ids)
        out["layer_profile"] = r2(prof.unit[rows[ok]], x[ok])
    return out


def matched_k(x, gene_ids, prof, hs_genes, k, seed):
    """k-means with Hotspot's K on the rows of `x` that are Hotspot genes, then coherence."""
    rows, ok = prof.rows(gene_ids)
    m = ok & np.isin(np.array(gene_ids), list(hs_genes))
    lab = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(x[m])
    return coherence(lab, prof.unit[rows[m]], np.random.default_rng(seed))


def kmeans_at_k(x, gene_ids, prof, k, seed):
    """k-means (one start) with the run's own K on all rows of `x`, then coherence on the genes
    with a profile: the same clusterer on `h` and `z`, so that the run's own labels (SMM on `z`)
    can be split into what the representation and what the clustering step do."""
    rows, ok = prof.rows(gene_ids)
    lab = KMeans(n_clusters=k, n_init=1, random_state=seed).fit_predict(x)
    return coherence(lab[ok], prof.unit[rows[ok]], np.random.default_rng(seed))


def standardized(x):
    """Each row centred and scaled over the pixels that are non-zero in some image (the tissue;
    darlc's `standardize` uses the tissue mask, which the run folder does not store)."""
    y = x[:, x.max(axis=0) > 0]
    sd = y.std(axis=1, keepdims=True)
    return (y - y.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("section")
    ap.add_argument("runs", nargs="*")
    ap.add_argument("--out", required=True)
    ap.add_argument("--hotspot")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pca-from")
    a = ap.parse_args()
    sec = Section(a.section)
    prof = Profiles(sec) if sec.layer is not None else None
    hs = None
    if a.hotspot:
        m = pd.read_csv(os.path.join(a.hotspot, "modules.csv"), dtype={"gene_id": str})
        hs = m[m.module != -1]
    hs_genes = set(hs.gene_id) if hs is not None else None
    # Genes with a spatial pattern: Hotspot's autocorrelation FDR < 0.05 (paper §4.3.2 scores
    # "spatially cofunctional genes", family members that share a spatial pattern).
    patterned = None
    if a.hotspot and os.path.exists(os.path.join(a.hotspot, "autocorrelation.csv")):
        auto = pd.read_csv(os.path.join(a.hotspot, "autocorrelation.csv"), index_col=0)
        auto.index = auto.index.astype(str)
        patterned = set(auto.index[auto.FDR < 0.05])

    def patterned_of(run):
        return None if patterned is None else [g in patterned for g in run.gene_ids]

    hs_k = int(hs.module.nunique()) if hs is not None else None
    rows = {}
    for folder in a.runs:
        run = Run(folder)
        name = os.path.basename(os.path.normpath(folder))
        r = {"clusters": int(run.info["clusters"]), "clusters_used": int(len(np.unique(run.labels))),
             "genes": len(run.gene_ids), "phases": run.info.get("phases")}
        met = json.load(open(os.path.join(folder, "metrics.json")))
        r["dbie"], r["dbip"] = met.get("dbie"), met.get("dbip")
        emb = {k: v.astype(np.float64) for k, v in run.emb.items() if k in ("z", "h")}
        r.update(family_fields(emb, run.symbols, a.seed, patterned_of(run)))
        if emb:
            imgs = run.images()["images"]
            r["encodes"] = {k: encodes(v, imgs, run.gene_ids, prof) for k, v in emb.items()}
        if hs is not None and prof is not None:
            r["matched_k"] = {k: matched_k(v, run.gene_ids, prof, hs_genes, hs_k, a.seed) for k, v in emb.items()}
        if prof is not None:
            r["coherence"] = score_clusters(run.labels, run.gene_ids, prof, hs_genes, a.seed)
            r["kmeans_at_k"] = {k: kmeans_at_k(v, run.gene_ids, prof, r["clusters"], a.seed) for k, v in emb.items()}
        rows[name] = r
        print(name, json.dumps({k: v for k, v in r.items() if k != "phases"})[:600], file=sys.stderr)
    if a.pca_from:
        run = Run(a.pca_from)
        x = run.images()["images"].reshape(len(run.gene_ids), -1).astype(np.float64)
        dim = int(run.info["config"]["module2"]["dim"])
        mx = x.max(axis=1, keepdims=True)
        if hs is not None and prof is not None:
            rows["raw images"] = {"matched_k": {"images": matched_k(x, run.gene_ids, prof, hs_genes, hs_k, a.seed)}}
        # A reference with no pattern at all: each gene as two numbers, the level and detection
        # rate of `encodes` (z-scored). Where it matches the PCAs, the families differ in level.
        lv = np.stack([np.log(x.mean(axis=1) + 1e-9), (x > 0).mean(axis=1)], axis=1)
        lv = (lv - lv.mean(axis=0)) / np.where(lv.std(axis=0) > 0, lv.std(axis=0), 1)
        sp = patterned_of(run)
        rows["level and detection"] = family_fields({"level": lv}, run.symbols, a.seed, sp)
        for name, y in (("PCA raw", x), ("PCA max-scaled", x / np.where(mx > 0, mx, 1)),
                        ("PCA standardized", standardized(x))):
            e = PCA(n_components=dim, random_state=0).fit_transform(y)
            rows[name] = {**family_fields({"pca": e}, run.symbols, a.seed, sp),
                          "encodes": {"pca": encodes(e, x, run.gene_ids, prof)}}
            if hs is not None and prof is not None:
                rows[name]["matched_k"] = {"pca": matched_k(e, run.gene_ids, prof, hs_genes, hs_k, a.seed)}
            print(name, json.dumps(rows[name])[:400], file=sys.stderr)
    if hs is not None and prof is not None:
        lab = hs.module.to_numpy(int)
        rows["Hotspot"] = {"clusters": int(len(np.unique(lab))),
                           "coherence": score_clusters(lab, list(hs.gene_id), prof, hs_genes, a.seed)}
    json.dump({"section": a.section, "seed": a.seed, "layers": prof.layers if prof else None,
               "rows": rows}, open(a.out + ".tmp", "w"), indent=1)
    os.replace(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
