//! Sparse spatial graphs for the denoising GAT and Gaussian kernel smoothing (method §3.2, §15).
//!
//! A [`Graph`] is undirected, unweighted and has a self-loop on every node:
//! `N(v) = { u : ‖q_u − q_v‖ ≤ r } ∪ {v}`. It is stored as a CSR adjacency list; no dense `n × n`
//! matrix is ever formed.
//!
//! # Edge order (the order of fixtures)
//!
//! The edge set `E` holds ordered pairs `(v, u)` with `u ∈ N(v)`. Edge ids are assigned in
//! lexicographic `(v, u)` order: edge `e` with `offsets[v] ≤ e < offsets[v + 1]` is `(v, nbrs[e])`,
//! and within node `v` the neighbours `nbrs[offsets[v]..offsets[v + 1]]` are strictly ascending and
//! include `v` itself. Every per-edge array (attention logits `e_vu`, coefficients `α_vu`, GKS
//! weights) is laid out in this order, and fixtures store edges in this order.
//!
//! The distance predicate is evaluated as `dx² + dy² ≤ r²` in f64 on the given coordinates.

use crate::error::{DarlcError, Result};

/// Radius on the Visium hexagonal lattice in spot pitches (method §3.2, CHOICE 9): 6 neighbours.
pub const HEX_RADIUS: f64 = 1.1;
/// Radius on square lattices in pixels (method §3.2, CHOICE 9 and 44): the 8-neighbourhood.
pub const SQUARE_RADIUS: f64 = 1.5;
/// Neighbours per node of the kNN graph for arbitrary coordinates (method §3.2).
pub const KNN_K: usize = 6;

/// An undirected spatial graph with self-loops in CSR form (method §3.2). See the module docs for
/// the edge order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Number of nodes.
    pub n: usize,
    /// CSR row offsets, length `n + 1`; `offsets[n]` is the number of edges `|E|`.
    pub offsets: Vec<usize>,
    /// Neighbour (column) index of each edge, ascending within each node, self included.
    pub nbrs: Vec<u32>,
}

/// Physical coordinates of Visium spots (method §3.2): `q_s = (array_col_s / 2, array_row_s·√3/2)`,
/// in units of the spot pitch. Fails if the two slices differ in length.
pub fn visium_coords(array_row: &[i64], array_col: &[i64]) -> Result<Vec<[f64; 2]>> {
    if array_row.len() != array_col.len() {
        return Err(DarlcError::param(
            "array_col",
            format!("{} columns for {} rows", array_col.len(), array_row.len()),
        ));
    }
    let h = 3f64.sqrt() / 2.0;
    Ok(array_row
        .iter()
        .zip(array_col)
        .map(|(&r, &c)| [c as f64 / 2.0, r as f64 * h])
        .collect())
}

/// Coordinates `(row, col)` of the pixels of an `h × w` grid, node `row·w + col` (row-major).
pub fn pixel_coords(h: usize, w: usize) -> Vec<[f64; 2]> {
    (0..h)
        .flat_map(|r| (0..w).map(move |c| [r as f64, c as f64]))
        .collect()
}

impl Graph {
    /// Build a graph from an undirected pair list (method §3.2 semantics): every pair `(a, b)` adds
    /// both `(a, b)` and `(b, a)`, every node gets its self-loop, duplicates are merged.
    pub fn from_pairs(n: usize, pairs: impl IntoIterator<Item = (usize, usize)>) -> Result<Graph> {
        check_node_count(n)?;
        let mut directed: Vec<(u32, u32)> = (0..n as u32).map(|v| (v, v)).collect();
        for (a, b) in pairs {
            if a >= n || b >= n {
                return Err(DarlcError::param(
                    "pairs",
                    format!("edge ({a}, {b}) out of range for {n} nodes"),
                ));
            }
            directed.push((a as u32, b as u32));
            directed.push((b as u32, a as u32));
        }
        Ok(Self::from_directed(n, directed))
    }

    /// Check a CSR triple read from elsewhere (a fixture, a file) and wrap it: offsets monotone
    /// from 0 to `nbrs.len()`, neighbours strictly ascending and in range, self-loops present, and
    /// symmetry (`u ∈ N(v)` ⇔ `v ∈ N(u)`).
    pub fn from_csr(n: usize, offsets: Vec<usize>, nbrs: Vec<u32>) -> Result<Graph> {
        check_node_count(n)?;
        if offsets.len() != n + 1 || offsets[0] != 0 || offsets[n] != nbrs.len() {
            return Err(DarlcError::param(
                "offsets",
                format!(
                    "need n + 1 = {} offsets from 0 to {} (got {} offsets)",
                    n + 1,
                    nbrs.len(),
                    offsets.len()
                ),
            ));
        }
        for v in 0..n {
            if offsets[v] > offsets[v + 1] {
                return Err(DarlcError::param(
                    "offsets",
                    format!("decrease at node {v}"),
                ));
            }
            let list = &nbrs[offsets[v]..offsets[v + 1]];
            if list.windows(2).any(|w| w[0] >= w[1]) {
                return Err(DarlcError::param(
                    "nbrs",
                    format!("neighbours of node {v} not strictly ascending"),
                ));
            }
            if list.last().is_some_and(|&u| u as usize >= n) {
                return Err(DarlcError::param(
                    "nbrs",
                    format!("node {v} has a neighbour ≥ n = {n}"),
                ));
            }
            if list.binary_search(&(v as u32)).is_err() {
                return Err(DarlcError::param(
                    "nbrs",
                    format!("node {v} lacks its self-loop"),
                ));
            }
        }
        let g = Graph { n, offsets, nbrs };
        for (v, u) in g.edges() {
            if g.edge_id(u, v).is_none() {
                return Err(DarlcError::param(
                    "nbrs",
                    format!("edge ({v}, {u}) has no reverse edge ({u}, {v})"),
                ));
            }
        }
        Ok(g)
    }

    /// Radius graph `N(v) = { u : ‖q_u − q_v‖ ≤ r } ∪ {v}` (method §3.2), found with a grid-bucket
    /// index of cell side ≈ r, so the cost is O(n log n + |E|) rather than O(n²).
    ///
    /// Use [`visium_coords`] with [`HEX_RADIUS`] for Visium and `(row, col)` with
    /// [`SQUARE_RADIUS`] for square lattices. Fails on a non-finite coordinate or radius, or a
    /// radius ≤ 0.
    pub fn radius(coords: &[[f64; 2]], r: f64) -> Result<Graph> {
        let n = coords.len();
        check_node_count(n)?;
        if !(r.is_finite() && r > 0.0) {
            return Err(DarlcError::param(
                "radius",
                format!("must be finite and > 0, got {r}"),
            ));
        }
        check_coords(coords)?;
        // A cell a hair wider than r: a pair within r then always lies in adjacent cells even
        // after the rounding of the cell computation.
        let index = CellIndex::new(coords, r * (1.0 + 1e-6));
        let r2 = r * r;
        let mut directed: Vec<(u32, u32)> = Vec::with_capacity(n * 8);
        for (v, q) in coords.iter().enumerate() {
            let (cx, cy) = index.key(q);
            for kx in cx - 1..=cx + 1 {
                for ky in cy - 1..=cy + 1 {
                    for &u in index.bucket((kx, ky)) {
                        if dist2(q, &coords[u as usize]) <= r2 {
                            directed.push((v as u32, u));
                        }
                    }
                }
            }
        }
        // Radius neighbourhoods are symmetric by construction and contain v (distance 0).
        Ok(Self::from_directed(n, directed))
    }

    /// Symmetrised k-nearest-neighbour graph (method §3.2, arbitrary coordinates): `u ∈ N(v)` iff
    /// u is among v's k nearest other nodes or v among u's, plus the self-loop. Distance ties are
    /// broken towards the lower index. With `k ≥ n − 1` the graph is complete. The default k is
    /// [`KNN_K`]. Fails on `k = 0` or non-finite coordinates.
    pub fn knn_symmetric(coords: &[[f64; 2]], k: usize) -> Result<Graph> {
        let n = coords.len();
        check_node_count(n)?;
        if k == 0 {
            return Err(DarlcError::param("k", "must be at least 1"));
        }
        check_coords(coords)?;
        let k = k.min(n.saturating_sub(1));
        let mut directed: Vec<(u32, u32)> = (0..n as u32).map(|v| (v, v)).collect();
        if k > 0 {
            let index = CellIndex::new(coords, knn_cell_side(coords, k));
            let mut cand: Vec<(f64, u32)> = Vec::new();
            for v in 0..n {
                index.k_nearest(coords, v, k, &mut cand);
                for &(_, u) in &cand[..k] {
                    directed.push((v as u32, u));
                    directed.push((u, v as u32));
                }
            }
        }
        Ok(Self::from_directed(n, directed))
    }

    /// The 8-neighbourhood grid of one `h × w` image with self-loops (method §3.1–3.2, natural
    /// images): node `row·w + col`; identical to `radius` on `(row, col)` with
    /// [`SQUARE_RADIUS`]. The same graph serves every image of a stack.
    pub fn pixel_grid(h: usize, w: usize) -> Result<Graph> {
        let n = h
            .checked_mul(w)
            .ok_or_else(|| DarlcError::param("pixel_grid", format!("{h} × {w} overflows")))?;
        check_node_count(n)?;
        let mut offsets = Vec::with_capacity(n + 1);
        let mut nbrs = Vec::with_capacity(9 * n);
        offsets.push(0);
        for row in 0..h {
            for col in 0..w {
                for r in row.saturating_sub(1)..=(row + 1).min(h - 1) {
                    for c in col.saturating_sub(1)..=(col + 1).min(w - 1) {
                        nbrs.push((r * w + c) as u32);
                    }
                }
                offsets.push(nbrs.len());
            }
        }
        Ok(Graph { n, offsets, nbrs })
    }

    /// Number of edges `|E|` (ordered pairs, self-loops included).
    pub fn num_edges(&self) -> usize {
        self.nbrs.len()
    }

    /// The neighbours `N(v)` in ascending order, `v` included.
    pub fn neighbors(&self, v: usize) -> &[u32] {
        &self.nbrs[self.offsets[v]..self.offsets[v + 1]]
    }

    /// `|N(v)|` including the self-loop. The graph is symmetric, so this is both the in- and the
    /// out-degree of v.
    pub fn in_degree(&self, v: usize) -> usize {
        self.offsets[v + 1] - self.offsets[v]
    }

    /// [`Graph::in_degree`] of every node.
    pub fn in_degrees(&self) -> Vec<usize> {
        self.offsets.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// All edges `(v, u)` in edge-id order (see the module docs).
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        (0..self.n).flat_map(move |v| self.neighbors(v).iter().map(move |&u| (v, u as usize)))
    }

    /// The centre node `v` of every edge, in edge-id order (the segment id for neighbourhood
    /// softmax and scatter-sums).
    pub fn edge_sources(&self) -> Vec<u32> {
        let mut src = Vec::with_capacity(self.num_edges());
        for v in 0..self.n {
            src.extend(std::iter::repeat_n(v as u32, self.in_degree(v)));
        }
        src
    }

    /// The id of edge `(v, u)`, if present (binary search in `N(v)`).
    pub fn edge_id(&self, v: usize, u: usize) -> Option<usize> {
        if v >= self.n {
            return None;
        }
        let u = u32::try_from(u).ok()?;
        self.neighbors(v)
            .binary_search(&u)
            .ok()
            .map(|i| self.offsets[v] + i)
    }

    /// For each edge `e = (v, u)`, the id of its reverse `(u, v)`. Self-loops map to themselves.
    /// An involution on edge ids; O(|E| log d).
    pub fn reverse_edges(&self) -> Vec<usize> {
        self.edges()
            .map(|(v, u)| {
                self.edge_id(u, v)
                    .expect("Graph invariant: every edge has its reverse")
            })
            .collect()
    }

    /// CSR from a directed pair list: sort by (v, u), merge duplicates. Callers guarantee
    /// symmetry and self-loops.
    fn from_directed(n: usize, mut directed: Vec<(u32, u32)>) -> Graph {
        directed.sort_unstable();
        directed.dedup();
        let mut offsets = vec![0usize; n + 1];
        for &(v, _) in &directed {
            offsets[v as usize + 1] += 1;
        }
        for v in 0..n {
            offsets[v + 1] += offsets[v];
        }
        let nbrs = directed.into_iter().map(|(_, u)| u).collect();
        Graph { n, offsets, nbrs }
    }
}

fn check_node_count(n: usize) -> Result<()> {
    if n > u32::MAX as usize {
        return Err(DarlcError::param(
            "nodes",
            format!("{n} nodes exceed the u32 index range"),
        ));
    }
    Ok(())
}

fn check_coords(coords: &[[f64; 2]]) -> Result<()> {
    match coords
        .iter()
        .position(|q| !(q[0].is_finite() && q[1].is_finite()))
    {
        Some(i) => Err(DarlcError::param(
            "coords",
            format!("node {i} has a non-finite coordinate {:?}", coords[i]),
        )),
        None => Ok(()),
    }
}

#[inline]
fn dist2(a: &[f64; 2], b: &[f64; 2]) -> f64 {
    let dx = a[0] - b[0];
    let dy = a[1] - b[1];
    dx * dx + dy * dy
}

/// Bounding box `(min, max)` of the coordinates (n ≥ 1).
fn bbox(coords: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    let mut lo = [f64::INFINITY; 2];
    let mut hi = [f64::NEG_INFINITY; 2];
    for q in coords {
        for d in 0..2 {
            lo[d] = lo[d].min(q[d]);
            hi[d] = hi[d].max(q[d]);
        }
    }
    (lo, hi)
}

/// A cell side giving about k points per cell for roughly uniform point sets.
fn knn_cell_side(coords: &[[f64; 2]], k: usize) -> f64 {
    let (lo, hi) = bbox(coords);
    let (w, h) = (hi[0] - lo[0], hi[1] - lo[1]);
    let n = coords.len() as f64;
    let s = if w > 0.0 && h > 0.0 {
        (w * h * k as f64 / n).sqrt()
    } else {
        w.max(h) * k as f64 / n
    };
    if s.is_finite() && s > 0.0 { s } else { 1.0 }
}

/// Points bucketed into square cells of side `cell`; buckets are found by binary search over the
/// sorted occupied cells, so memory is O(n) whatever the coordinate range.
struct CellIndex {
    cell: f64,
    origin: [f64; 2],
    /// Occupied cell keys, ascending.
    keys: Vec<(i64, i64)>,
    /// `points[starts[i]..starts[i + 1]]` lie in cell `keys[i]`, ascending by index.
    starts: Vec<usize>,
    points: Vec<u32>,
    /// Smallest and largest occupied key per axis.
    key_lo: (i64, i64),
    key_hi: (i64, i64),
}

impl CellIndex {
    fn new(coords: &[[f64; 2]], cell: f64) -> CellIndex {
        let origin = if coords.is_empty() {
            [0.0; 2]
        } else {
            bbox(coords).0
        };
        let mut idx = CellIndex {
            cell,
            origin,
            keys: Vec::new(),
            starts: Vec::new(),
            points: Vec::new(),
            key_lo: (0, 0),
            key_hi: (0, 0),
        };
        let mut keyed: Vec<((i64, i64), u32)> = coords
            .iter()
            .enumerate()
            .map(|(i, q)| (idx.key(q), i as u32))
            .collect();
        keyed.sort_unstable();
        idx.key_lo = (i64::MAX, i64::MAX);
        idx.key_hi = (i64::MIN, i64::MIN);
        for (i, &(key, p)) in keyed.iter().enumerate() {
            if idx.keys.last() != Some(&key) {
                idx.keys.push(key);
                idx.starts.push(i);
            }
            idx.points.push(p);
            idx.key_lo = (idx.key_lo.0.min(key.0), idx.key_lo.1.min(key.1));
            idx.key_hi = (idx.key_hi.0.max(key.0), idx.key_hi.1.max(key.1));
        }
        idx.starts.push(keyed.len());
        idx
    }

    #[inline]
    fn key(&self, q: &[f64; 2]) -> (i64, i64) {
        (
            ((q[0] - self.origin[0]) / self.cell).floor() as i64,
            ((q[1] - self.origin[1]) / self.cell).floor() as i64,
        )
    }

    fn bucket(&self, key: (i64, i64)) -> &[u32] {
        match self.keys.binary_search(&key) {
            Ok(i) => &self.points[self.starts[i]..self.starts[i + 1]],
            Err(_) => &[],
        }
    }

    /// The k nearest nodes to `v` other than v itself, by `(distance², index)` ascending, left in
    /// `cand[..k]`. Rings of cells are searched outward until every node not yet seen is provably
    /// farther than the k-th candidate (requires `k ≤ n − 1`).
    fn k_nearest(&self, coords: &[[f64; 2]], v: usize, k: usize, cand: &mut Vec<(f64, u32)>) {
        cand.clear();
        let q = &coords[v];
        let (cx, cy) = self.key(q);
        // Ring radius (in cells) beyond which no occupied cell exists.
        let max_ring = (cx - self.key_lo.0)
            .max(self.key_hi.0 - cx)
            .max(cy - self.key_lo.1)
            .max(self.key_hi.1 - cy)
            .max(0);
        let mut ring: i64 = 0;
        loop {
            for kx in cx - ring..=cx + ring {
                for ky in cy - ring..=cy + ring {
                    if (kx - cx).abs() != ring && (ky - cy).abs() != ring {
                        continue; // interior cells were visited by earlier rings
                    }
                    for &u in self.bucket((kx, ky)) {
                        if u as usize != v {
                            cand.push((dist2(q, &coords[u as usize]), u));
                        }
                    }
                }
            }
            if cand.len() >= k {
                cand.select_nth_unstable_by(k - 1, cmp_candidate);
                // Every unseen node is farther than `ring` cells (minus a rounding margin).
                let safe = ring as f64 * self.cell * (1.0 - 1e-6);
                if cand[k - 1].0 <= safe * safe || ring >= max_ring {
                    break;
                }
            }
            ring += 1;
        }
        cand[..k].sort_unstable_by(cmp_candidate);
    }
}

fn cmp_candidate(a: &(f64, u32), b: &(f64, u32)) -> std::cmp::Ordering {
    a.0.total_cmp(&b.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_interior_has_nine_entries_and_hand_counted_edges() {
        let g = Graph::radius(&pixel_coords(3, 3), SQUARE_RADIUS).unwrap();
        // Centre node 4 of a 3×3 grid: itself + 8 neighbours = all 9 nodes.
        assert_eq!(g.neighbors(4), &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
        // Hand count for 3×3, 8-neighbourhood: 4 corners × 4 + 4 edge-midpoints × 6 + 1 × 9
        // = 16 + 24 + 9 = 49 entries (self-loops included).
        assert_eq!(g.num_edges(), 49);
        // 4×5 grid: undirected non-self pairs = horizontal 4·4 + vertical 3·5 + 2 diagonals × 3·4
        // = 16 + 15 + 24 = 55; entries = 2·55 + 20 self-loops = 130.
        let g = Graph::radius(&pixel_coords(4, 5), SQUARE_RADIUS).unwrap();
        assert_eq!(g.num_edges(), 130);
        assert_eq!(g, Graph::pixel_grid(4, 5).unwrap());
    }

    #[test]
    fn hex_interior_has_seven_entries() {
        // Visium lattice rows 0..5, columns with row+col even.
        let (mut rows, mut cols) = (vec![], vec![]);
        for r in 0..5i64 {
            for c in 0..12i64 {
                if (r + c) % 2 == 0 {
                    rows.push(r);
                    cols.push(c);
                }
            }
        }
        let q = visium_coords(&rows, &cols).unwrap();
        let g = Graph::radius(&q, HEX_RADIUS).unwrap();
        let v = (0..rows.len())
            .find(|&i| rows[i] == 2 && cols[i] == 6)
            .unwrap();
        assert_eq!(g.in_degree(v), 7);
        // Its neighbours on the hex lattice: (2,4), (2,8), (1,5), (1,7), (3,5), (3,7), itself.
        let mut got: Vec<(i64, i64)> = g
            .neighbors(v)
            .iter()
            .map(|&u| (rows[u as usize], cols[u as usize]))
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![(1, 5), (1, 7), (2, 4), (2, 6), (2, 8), (3, 5), (3, 7)]
        );
    }

    #[test]
    fn from_pairs_and_reverse_index() {
        // Path 0–1–2 plus an isolated node 3.
        let g = Graph::from_pairs(4, [(0, 1), (2, 1), (1, 0)]).unwrap();
        assert_eq!(g.offsets, vec![0, 2, 5, 7, 8]);
        assert_eq!(g.nbrs, vec![0, 1, 0, 1, 2, 1, 2, 3]);
        assert_eq!(g.edge_sources(), vec![0, 0, 1, 1, 1, 2, 2, 3]);
        // Edge ids: (0,0)=0 (0,1)=1 (1,0)=2 (1,1)=3 (1,2)=4 (2,1)=5 (2,2)=6 (3,3)=7.
        assert_eq!(g.reverse_edges(), vec![0, 2, 1, 3, 5, 4, 6, 7]);
        assert_eq!(g.in_degrees(), vec![2, 3, 2, 1]);
        assert!(Graph::from_pairs(2, [(0, 2)]).is_err());
        let again = Graph::from_csr(g.n, g.offsets.clone(), g.nbrs.clone()).unwrap();
        assert_eq!(again, g);
        // Symmetric CSR is accepted; an asymmetric one or one lacking a self-loop is rejected.
        assert!(Graph::from_csr(2, vec![0, 2, 4], vec![0, 1, 0, 1]).is_ok());
        assert!(Graph::from_csr(2, vec![0, 2, 3], vec![0, 1, 1]).is_err());
        assert!(Graph::from_csr(2, vec![0, 2, 2], vec![0, 1]).is_err());
        assert!(Graph::from_csr(2, vec![0, 1, 2], vec![1, 0]).is_err());
    }

    #[test]
    fn knn_ties_go_to_lower_index_and_union_symmetrises() {
        // Node 0 at the origin; nodes 1..=4 at distance 1 (tie), node 5 at distance 2.
        let q = [
            [0.0, 0.0],
            [1.0, 0.0],
            [0.0, 1.0],
            [-1.0, 0.0],
            [0.0, -1.0],
            [2.0, 0.0],
        ];
        let g = Graph::knn_symmetric(&q, 2).unwrap();
        // 0's 2 nearest: the tie {1,2,3,4} at distance 1 resolves to {1,2}.
        // 1's 2 nearest: 0 (d=1), then 5 (d=1) vs 2 (d=√2): {0,5}.
        // 2's: 0 (1), then 1 and 3 tie at √2 → 1.  3's: 0, then 2 and 4 tie at √2 → 2.
        // 4's: 0, then 1 and 3 tie at √2 → 1.      5's: 1 (d=1), 0 (d=2).
        // Union with self-loops:
        // 0: {0,1,2,3,4,5}  1: {0,1,2,4,5}  2: {0,1,2,3}  3: {0,2,3}  4: {0,1,4}  5: {0,1,5}
        let want: Vec<Vec<u32>> = vec![
            vec![0, 1, 2, 3, 4, 5],
            vec![0, 1, 2, 4, 5],
            vec![0, 1, 2, 3],
            vec![0, 2, 3],
            vec![0, 1, 4],
            vec![0, 1, 5],
        ];
        for (v, w) in want.iter().enumerate() {
            assert_eq!(g.neighbors(v), &w[..], "node {v}");
        }
        // k ≥ n − 1 gives the complete graph; k = 0 is an error.
        let g = Graph::knn_symmetric(&q, 10).unwrap();
        assert_eq!(g.num_edges(), 36);
        assert!(Graph::knn_symmetric(&q, 0).is_err());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(Graph::radius(&[[0.0, f64::NAN]], 1.0).is_err());
        assert!(Graph::radius(&[[0.0, 0.0]], 0.0).is_err());
        assert!(Graph::radius(&[[0.0, 0.0]], f64::INFINITY).is_err());
        assert!(visium_coords(&[1, 2], &[1]).is_err());
        let empty = Graph::radius(&[], 1.0).unwrap();
        assert_eq!((empty.n, empty.num_edges(), empty.offsets.len()), (0, 0, 1));
        assert_eq!(Graph::knn_symmetric(&[], 6).unwrap().num_edges(), 0);
        assert_eq!(Graph::pixel_grid(0, 5).unwrap().num_edges(), 0);
    }
}
