"""Shared readers for the real-data benchmark (benches/real_data.sh).

Sections (under $DARLC_SHARED/data, default ../shared/data): the count matrix, gene symbols, spot
coordinates and, where the data carry them, per-spot layer labels; and a darlc run folder
(genes.csv, clusters.csv, embeddings.safetensors, images.safetensors, run.json).
Needs numpy, scipy and pandas only (see real_data.sh for the versions used).
"""
import gzip
import json
import os
import struct

import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

SHARED = os.environ.get("DARLC_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))

# name -> (folder, darlc input options, spot-label reader)
SECTIONS = {
    "dlpfc": ("dlpfc_151673_despace500", []),
    "mob": ("mob_st_rep11", []),
    "bc1": ("breast_cancer_st_layers1to4", ["--section", "1", "--coords", "bin"]),
}


def data_dir(name):
    return os.path.join(SHARED, "data", SECTIONS[name][0])


class Section:
    """Counts [genes, spots] (CSR, raw), feature ids/symbols, spot coordinates [spots, 2] and
    per-spot layer labels (None where the data carry none or the spot is unlabelled)."""

    def __init__(self, name):
        d = data_dir(name)
        self.name = name
        with gzip.open(os.path.join(d, "matrix.mtx.gz"), "rb") as f:
            m = scipy.io.mmread(f)
        self.counts = sp.csr_matrix(m, dtype=np.float64)
        feats = pd.read_csv(os.path.join(d, "features.tsv.gz"), sep="\t", header=None)
        self.ids = [str(x) for x in feats[0]]
        self.symbols = [str(x) for x in feats[1]]
        self.barcodes = [l.strip() for l in gzip.open(os.path.join(d, "barcodes.tsv.gz"), "rt")]
        n = len(self.barcodes)
        self.layer = None
        if name == "mob":
            s = pd.read_csv(os.path.join(d, "spots.csv"))
            assert list(s["spot"]) == self.barcodes
            self.coords = s[["x", "y"]].to_numpy(float)
            self.layer = np.array([str(x) for x in s["layer"]], dtype=object)
        elif name == "dlpfc":
            p = pd.read_csv(os.path.join(d, "tissue_positions.csv"))
            assert list(p["barcode"]) == self.barcodes
            self.coords = p[["pxl_row_in_fullres", "pxl_col_in_fullres"]].to_numpy(float)
            lab = pd.read_csv(os.path.join(d, "labels.csv"), keep_default_na=False)
            assert list(lab["barcode"]) == self.barcodes
            self.layer = np.array([x if x else None for x in lab["layer"]], dtype=object)
        elif name == "bc1":
            s = pd.read_csv(os.path.join(d, "spots.csv"))
            assert list(s["barcode"]) == self.barcodes
            keep = (s["section"] == 1).to_numpy()
            self.counts = self.counts[:, np.flatnonzero(keep)]
            self.barcodes = [b for b, k in zip(self.barcodes, keep) if k]
            self.coords = s.loc[keep, ["x", "y"]].to_numpy(float)
        assert self.counts.shape == (len(self.ids), len(self.barcodes)), (self.counts.shape, n)
        self.row_of_id = {g: i for i, g in enumerate(self.ids)}

    def layer_profiles(self):
        """Per gene its mean log-normalised expression per layer, centred over the layers
        ([genes, layers]); log1p of counts scaled to the median spot total (totals over all genes
        of the matrix). Only labelled spots. Returns (profiles, layer names)."""
        lab = self.layer
        keep = np.array([l is not None for l in lab])
        x = self.counts[:, np.flatnonzero(keep)]
        tot = np.asarray(x.sum(axis=0)).ravel()
        x = x.multiply(np.median(tot) / np.maximum(tot, 1)[None, :]).tocsr()
        x.data = np.log1p(x.data)
        layers = sorted(set(lab[keep]))
        ll = lab[keep]
        prof = np.stack([np.asarray(x[:, np.flatnonzero(ll == L)].mean(axis=1)).ravel() for L in layers], axis=1)
        return prof - prof.mean(axis=1, keepdims=True), layers


def read_safetensors(path):
    """All tensors of a safetensors file as numpy arrays, and its metadata."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        hdr = json.loads(f.read(n))
        body = f.read()
    dt = {"F32": np.float32, "F64": np.float64, "U8": np.uint8, "I64": np.int64, "I32": np.int32, "U32": np.uint32}
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(body[a:b], dtype=dt[v["dtype"]]).reshape(v["shape"])
    return out, hdr.get("__metadata__", {})


class Run:
    """A finished darlc run folder (run.json present)."""

    def __init__(self, folder):
        self.folder = folder
        if not os.path.exists(os.path.join(folder, "run.json")):
            raise FileNotFoundError(f"{folder}: no run.json (not a finished darlc run)")
        self.info = json.load(open(os.path.join(folder, "run.json")))
        g = pd.read_csv(os.path.join(folder, "genes.csv"), keep_default_na=False, dtype=str)
        self.gene_ids = list(g["gene_id"])
        self.symbols = list(g["symbol"])
        c = pd.read_csv(os.path.join(folder, "clusters.csv"), keep_default_na=False, dtype={"gene_id": str})
        assert list(c["gene_id"]) == self.gene_ids, "clusters.csv and genes.csv disagree"
        self.labels = c["cluster"].to_numpy(int)
        p = os.path.join(folder, "embeddings.safetensors")
        self.emb = read_safetensors(p)[0] if os.path.exists(p) else {}

    def images(self):
        t, _ = read_safetensors(os.path.join(self.folder, "images.safetensors"))
        return t
