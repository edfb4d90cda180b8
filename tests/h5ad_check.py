"""Check a run's darlc.h5ad with Python's anndata against the run's other outputs (issue 25, item 2).

Usage: python3 tests/h5ad_check.py RUN_DIR [POSITIONS_CSV]

Reads RUN_DIR/darlc.h5ad with anndata.read_h5ad and checks every field against the files of the
same run: spots.csv (obs names), genes.csv (gene ids, symbols), clusters.csv (clusters,
confidence), run.json (K, version, configuration), embeddings.safetensors (varm), and
images.safetensors (X: each spot's value is its pixel in the gene's image). With a Visium
positions table, array_row/array_col and obsm["spatial"] are checked against it too. Prints one
line per group of checks and exits non-zero (with the failed assertion) on the first mismatch.
Used by tests/h5ad.rs; needs anndata (and with it h5py, numpy, pandas, scipy).
"""

import csv
import json
import struct
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def read_safetensors(path):
    """A safetensors file as {name: numpy array} (F32 / U8 only), without the safetensors package."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    body = raw[8 + n :]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "U8": np.uint8}[t["dtype"]]
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=dtype).reshape(t["shape"])
    return out


def same_json(h5, js, where):
    """uns holds the JSON configuration as nested dicts; nulls are left out."""
    if isinstance(js, dict):
        keys = {k for k, v in js.items() if v is not None}
        assert set(h5.keys()) == keys, f"{where}: keys {sorted(h5.keys())} != {sorted(keys)}"
        for k in keys:
            same_json(h5[k], js[k], f"{where}.{k}")
    elif isinstance(js, bool):
        assert bool(h5) == js and isinstance(h5, (bool, np.bool_)), f"{where}: {h5!r} != {js!r}"
    elif isinstance(js, (int, float)):
        assert float(h5) == float(js), f"{where}: {h5!r} != {js!r}"
    elif isinstance(js, str):
        assert h5 == js, f"{where}: {h5!r} != {js!r}"
    elif isinstance(js, list):
        if all(isinstance(v, str) for v in js):
            assert list(h5) == js, f"{where}: {h5!r} != {js!r}"
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in js):
            assert np.array_equal(np.asarray(h5, dtype=float), np.asarray(js, dtype=float)), where
        else:
            assert h5 == json.dumps(js, separators=(",", ":")), f"{where}: {h5!r}"
    else:
        raise AssertionError(f"{where}: unexpected JSON value {js!r}")


def main():
    run = Path(sys.argv[1])
    positions = Path(sys.argv[2]) if len(sys.argv) > 2 else None
    a = ad.read_h5ad(run / "darlc.h5ad")
    spots = read_csv(run / "spots.csv")
    genes = read_csv(run / "genes.csv")
    clusters = read_csv(run / "clusters.csv")
    rj = json.loads((run / "run.json").read_text())
    k = rj["clusters"]
    n_obs, n_vars = len(spots), len(genes)

    # Shape and names.
    assert a.shape == (n_obs, n_vars), f"shape {a.shape} != {(n_obs, n_vars)}"
    assert list(a.obs_names) == [s["spot_id"] for s in spots], "obs_names != spots.csv spot_id"
    ids = [g["gene_id"] for g in genes]
    symbols = [g["symbol"] for g in genes]
    assert list(a.var["gene_ids"]) == ids, "var gene_ids != genes.csv gene_id"
    assert list(a.var["symbol"]) == symbols, "var symbol != genes.csv symbol"
    unique = ad.utils.make_index_unique(pd.Index(symbols))
    assert list(a.var_names) == list(unique), "var_names != symbols made unique"
    assert a.var_names.is_unique and a.obs_names.is_unique
    print(f"names: {n_obs} spots, {n_vars} genes OK")

    # obs columns.
    assert list(a.obs.columns) == ["array_row", "array_col", "in_tissue"], list(a.obs.columns)
    assert (a.obs["in_tissue"] == 1).all()
    if positions is not None:
        pos = {r[0]: r for r in csv.reader(open(positions)) if r and r[0] != "barcode"}
        for name, row, col, xy in zip(
            a.obs_names, a.obs["array_row"], a.obs["array_col"], a.obsm["spatial"]
        ):
            p = pos[name]
            assert p[1] == "1", f"{name} not in tissue"
            assert (row, col) == (int(p[2]), int(p[3])), f"{name}: array ({row}, {col}) != {p[2:4]}"
            # scanpy's convention: obsm["spatial"] = [x, y] = [pxl_col, pxl_row].
            assert list(xy) == [float(p[5]), float(p[4])], f"{name}: spatial {xy} != {p[4:6]}"
        print("obs: array_row, array_col, in_tissue, obsm['spatial'] match the positions table")
    else:
        assert a.obsm["spatial"].shape == (n_obs, 2)
        assert np.isfinite(a.obsm["spatial"]).all()
        print("obs: columns and obsm['spatial'] shape OK")

    # var: clusters and confidence.
    gene_col = "gene_id" if "gene_id" in clusters[0] else "gene"
    assert [c[gene_col] for c in clusters] == ids, "clusters.csv genes != genes.csv"
    cl = a.var["darlc_cluster"]
    assert isinstance(cl.dtype, pd.CategoricalDtype), cl.dtype
    assert list(cl.cat.categories) == [str(j) for j in range(k)], list(cl.cat.categories)
    labels = np.array([int(c["cluster"]) for c in clusters])
    assert np.array_equal(cl.cat.codes.to_numpy(), labels), "darlc_cluster codes != clusters.csv"
    assert list(cl.astype(str)) == [c["cluster"] for c in clusters]
    conf = np.array([float(c["confidence"]) for c in clusters])
    assert np.abs(a.var["darlc_confidence"].to_numpy() - conf).max() <= 5e-7, "confidence"
    assert list(a.var.columns) == ["gene_ids", "symbol", "darlc_cluster", "darlc_confidence"]
    print(f"var: K = {k} categories, codes and confidence match clusters.csv")

    # X against the images: each spot's value is its pixel in the gene's image.
    assert sp.issparse(a.X) and a.X.format == "csr", type(a.X)
    assert a.X.dtype == np.float32, a.X.dtype
    x = a.X.toarray()
    st = read_safetensors(run / "images.safetensors")
    images, mask = st["images"], st["mask"]
    pr = np.array([int(s["pixel_row"]) for s in spots])
    pc = np.array([int(s["pixel_col"]) for s in spots])
    # spots.csv may give canvas coordinates of the uncropped image: find the offset from the mask
    # (tissue = the spots' pixels), 0 once spots.csv is on the stored images.
    rows, cols = np.nonzero(mask)
    dr, dc = pr.min() - rows.min(), pc.min() - cols.min()
    on_images = images[:, 0, pr - dr, pc - dc].T
    assert np.array_equal(x, on_images), "X != the images at the spots' pixels"
    assert (a.X.data != 0).all(), "X stores explicit zeros"
    print(f"X: {a.X.nnz} non-zeros, equal to the images at the spots' pixels")

    # varm: the embeddings.
    # k-means has none (no embeddings.safetensors): then varm is empty.
    e = run / "embeddings.safetensors"
    emb = read_safetensors(e) if e.exists() else {}
    names = {"h": "darlc_h", "z": "darlc_z", "responsibilities": "darlc_responsibilities"}
    assert set(a.varm.keys()) == {names[n] for n in emb}, (list(a.varm.keys()), list(emb))
    for n, v in emb.items():
        assert a.varm[names[n]].dtype == np.float32
        assert np.array_equal(a.varm[names[n]], v), f"varm[{names[n]}] != embeddings.safetensors {n}"
    print("varm: " + (", ".join(f"{names[n]} {v.shape}" for n, v in emb.items()) or "none") + " match")

    # obsm: module scores, recomputed from X (float64 here, float32 in the file).
    assert set(a.obsm.keys()) == {"spatial", "darlc_module_score"}, list(a.obsm.keys())
    ms = a.obsm["darlc_module_score"]
    assert ms.shape == (n_obs, k) and ms.dtype == np.float32, (ms.shape, ms.dtype)
    mx = x.astype(np.float64).max(axis=0)
    scaled = np.divide(x, mx, out=np.zeros_like(x, dtype=np.float64), where=mx > 0)
    want = np.zeros((n_obs, k))
    for j in range(k):
        members = labels == j
        if members.any():
            want[:, j] = scaled[:, members].mean(axis=1)
    assert np.abs(ms - want).max() <= 1e-6, np.abs(ms - want).max()
    assert ((ms >= 0) & (ms <= 1)).all()
    print(f"obsm: darlc_module_score {ms.shape} matches the recomputed scores")

    # uns: version and configuration.
    u = a.uns["darlc"]
    assert set(u.keys()) == {
        "darlc_version", "method", "input", "clusters", "config", "config_json", "spatial"
    }, sorted(u.keys())
    assert u["darlc_version"] == rj["darlc_version"]
    assert u["method"] == rj["config"]["method"], (u["method"], rj["config"]["method"])
    assert int(u["clusters"]) == k
    assert json.loads(u["config_json"]) == rj["config"], "config_json != run.json config"
    same_json(u["config"], rj["config"], "uns.darlc.config")
    assert not a.layers and not a.obsp and not a.varp
    print("uns: darlc_version, method, clusters, config match run.json")
    print("OK")


if __name__ == "__main__":
    main()
