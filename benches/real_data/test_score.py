"""Self-checks of the scorer (python3 benches/real_data/test_score.py; no data needed)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from score import coherence, family_of_symbol, family_scores  # noqa: E402


def test_family_rules_match_darlc():
    # The cases of src/eval/families.rs `prefix_rules`.
    cases = [("HLA-A", "HLA"), ("HLA-DRB1", "HLA"), ("H2-K1", "HLA"), ("GABRA1", "GABR"), ("GABRD", "GABR"),
             ("GABRG3-AS1", None), ("Gabrb2", "GABR"), ("RPL3", "RPL"), ("RPL10A", "RPL"), ("RPL36AL", "RPL"),
             ("RPLP0", "RPL"), ("RPL13AP5", None), ("RPLP3", None), ("Rpl10a", "RPL"), ("Rplp1", "RPL"),
             ("MT1X", "MT"), ("MT2A", "MT"), ("MT3", "MT"), ("MT-CO1", None), ("MT1DP", None), ("MTOR", None),
             ("Mt1", "MT"), ("mt-Nd1", None), ("Mt5", None), ("ACTB", None)]
    for s, want in cases:
        assert family_of_symbol(s) == want, (s, family_of_symbol(s), want)


def test_coherence_equals_brute_force():
    rng = np.random.default_rng(1)
    p = rng.normal(size=(40, 6))
    p -= p.mean(axis=1, keepdims=True)
    u = p / np.linalg.norm(p, axis=1, keepdims=True)
    lab = rng.integers(0, 5, size=40)
    tot, w = 0.0, 0
    for c in np.unique(lab):
        m = np.flatnonzero(lab == c)
        if len(m) < 2:
            continue
        cc = np.corrcoef(p[m])
        tot += len(m) * cc[np.triu_indices(len(m), 1)].mean()
        w += len(m)
    got = coherence(lab, u, np.random.default_rng(0))["coherence"]
    assert abs(got - tot / w) < 1e-12, (got, tot / w)


def test_families_separated_and_random():
    # Families around far-apart centres: every neighbour that can be in the family is (MT has 4
    # genes, so 3 of 5), and Leiden mostly recovers them (with 5 genes per family a 5-NN graph
    # gives every gene at least one edge out of its family, as in darlc's own benchmark);
    # random embeddings score near chance.
    names = [f"RPL{i}" for i in range(1, 9)] + [f"HLA-{c}" for c in "ABCDEFG"] + [f"MT1{c}" for c in "ABEF"]
    names += [f"G{i}" for i in range(200)]
    fam = np.array([family_of_symbol(s) for s in names], dtype=object)
    rng = np.random.default_rng(0)
    centres = {"RPL": 0, "HLA": 1, "MT": 2, None: 3}
    x = rng.normal(size=(len(names), 8)) * 0.1
    for i, f in enumerate(fam):
        x[i, centres[f]] += 10 if f else 0
    x[fam == None] = rng.normal(size=((fam == None).sum(), 8)) * 3 + 30  # noqa: E711
    r = family_scores(x, names, 0)
    assert r["retrieval_per_family"] == {"HLA": 1.0, "MT": 0.6, "RPL": 1.0}, r
    assert r["leiden_nmi"] > 0.8, r
    r = family_scores(rng.normal(size=x.shape), names, 0)
    assert r["leiden_nmi"] < 0.6 and r["retrieval"] < 0.2, r
    # Without RPL its genes are no family: the two others are scored alone, over the same genes.
    r = family_scores(x, names, 0, exclude=("RPL",))
    assert r["families_used"] == ["HLA", "MT"] and r["retrieval_per_family"] == {"HLA": 1.0, "MT": 0.6}, r
    assert "RPL" not in r["family_sizes"], r
    # Only some members drawn and asked: HLA's first 3 and MT's first 2 (MT 3 of 5 neighbours in
    # the family, as before); a neighbour outside the drawn members still counts as a hit.
    keep = [n in ("HLA-A", "HLA-B", "HLA-C", "MT1A", "MT1B") for n in names]
    r = family_scores(x, names, 0, members=keep)
    assert r["family_sizes"] == {"HLA": 3, "MT": 2, "RPL": 0} and r["families_used"] == ["HLA", "MT"], r
    assert r["retrieval_per_family"] == {"HLA": 1.0, "MT": 0.6}, r
    assert r["family_sizes_all"] == {"HLA": 7, "MT": 4, "RPL": 8}, r
    # With one family left there is nothing to separate.
    assert "skipped" in family_scores(x, names, 0, exclude=("RPL", "HLA")), r


if __name__ == "__main__":
    for name, f in list(globals().items()):
        if name.startswith("test_"):
            f()
            print("ok", name)
