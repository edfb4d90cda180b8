//! Leiden community detection (Traag, Waltman & van Eck 2019, "From Louvain to Leiden:
//! guaranteeing well-connected communities"), used for the gene-family benchmark ([P] §4.3.2)
//! and `darlc leiden`.
//!
//! One pass is the paper's Algorithm A.2: fast local moving (queue-based), refinement of each
//! community by merging well-connected singletons (randomised, `Pr ∝ exp(ΔH/θ)`), aggregation by
//! the *refined* partition with the unrefined partition as the starting point on the aggregate,
//! repeated until every community is a single aggregate node. Passes repeat from the previous
//! result until a pass changes nothing (at most `max_passes`).
//!
//! Quality functions, for a symmetric weight matrix `A` (self-loops `A_ii` allowed), membership
//! `σ` and resolution `γ`:
//! * modularity `Q = (1/2m) Σ_ij (A_ij − γ k_i k_j / 2m) δ(σ_i, σ_j)` with `k_i = Σ_j A_ij`,
//!   `2m = Σ_ij A_ij`;
//! * CPM `H = ½ Σ_ij (A_ij − γ n_i n_j) δ(σ_i, σ_j)` with node sizes `n_i = 1`
//!   (= `Σ_c [e_c − γ n_c²/2]`; Traag's `binom(n_c, 2)` differs by the constant `γN/2`).
//!
//! Both share the move gain `w_{v,C} − γ' w_v W_C` (edge-weight units) with node weight
//! `w_v = k_v, γ' = γ/2m` (modularity) or `w_v = n_v, γ' = γ` (CPM); the refinement's
//! randomness `θ` (default 0.01, as in the paper and igraph) divides this unnormalised gain.
//!
//! Determinism: one named stream `rng::stream(seed, "leiden")`; node orders are shuffled from
//! it; neighbour communities are scanned in adjacency order; ties keep the current community or
//! the first best candidate. As a safeguard the final communities are split into connected
//! components (splitting a disconnected community always raises Q and H); the number of such
//! splits is reported and is 0 in all tests.

use crate::error::{DarlcError, Result};
use crate::rng;
use rand::Rng;
use rand::seq::SliceRandom;
use std::collections::VecDeque;

/// An undirected weighted graph in compressed adjacency form. Off-diagonal entries are stored
/// in both directions (sorted by neighbour); self-loops are kept apart in `self_loop`.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    offsets: Vec<usize>,
    neighbors: Vec<usize>,
    weights: Vec<f64>,
    self_loop: Vec<f64>,
}

impl Graph {
    /// Build from undirected edges `(i, j, w)`: for `i ≠ j`, `w` is added to `A_ij` and `A_ji`;
    /// for `i = j`, to `A_ii`. Repeated edges add up. Errors on an index ≥ `n` or a weight that
    /// is negative or not finite.
    pub fn from_edges(n: usize, edges: &[(usize, usize, f64)]) -> Result<Graph> {
        let mut directed: Vec<(usize, usize, f64)> = Vec::with_capacity(2 * edges.len());
        let mut self_loop = vec![0.0; n];
        for &(i, j, w) in edges {
            if i >= n || j >= n {
                return Err(DarlcError::Data(format!(
                    "graph edge ({i}, {j}) refers to a node ≥ {n}"
                )));
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(DarlcError::Data(format!(
                    "graph edge ({i}, {j}) has weight {w}; weights must be finite and ≥ 0"
                )));
            }
            if i == j {
                self_loop[i] += w;
            } else {
                directed.push((i, j, w));
                directed.push((j, i, w));
            }
        }
        Ok(Self::from_directed(n, directed, self_loop))
    }

    /// From both directions of every off-diagonal entry; duplicates are summed in input order
    /// (stable sort), so the result is deterministic.
    fn from_directed(n: usize, mut d: Vec<(usize, usize, f64)>, self_loop: Vec<f64>) -> Graph {
        d.sort_by_key(|&(i, j, _)| (i, j));
        let mut offsets = vec![0usize; n + 1];
        let mut neighbors = Vec::with_capacity(d.len());
        let mut weights: Vec<f64> = Vec::with_capacity(d.len());
        let mut last: Option<(usize, usize)> = None;
        for (i, j, w) in d {
            if last == Some((i, j)) {
                *weights.last_mut().expect("an entry was pushed") += w;
            } else {
                neighbors.push(j);
                weights.push(w);
                offsets[i + 1] += 1;
                last = Some((i, j));
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Graph {
            offsets,
            neighbors,
            weights,
            self_loop,
        }
    }

    /// Number of nodes.
    pub fn n(&self) -> usize {
        self.self_loop.len()
    }

    /// Neighbours of `v` other than itself, with weights, in increasing neighbour order.
    pub fn neighbors(&self, v: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.offsets[v]..self.offsets[v + 1];
        self.neighbors[r.clone()]
            .iter()
            .copied()
            .zip(self.weights[r].iter().copied())
    }

    /// `A_vv`.
    pub fn self_loop(&self, v: usize) -> f64 {
        self.self_loop[v]
    }

    /// Weighted degree `k_v = Σ_j A_vj` (self-loop counted once).
    pub fn degree(&self, v: usize) -> f64 {
        self.self_loop[v] + self.neighbors(v).map(|(_, w)| w).sum::<f64>()
    }

    /// `2m = Σ_ij A_ij`.
    pub fn total_weight(&self) -> f64 {
        (0..self.n()).map(|v| self.degree(v)).sum()
    }

    /// Whether the nodes `members` induce a connected subgraph.
    pub fn is_connected_subset(&self, members: &[usize]) -> bool {
        let mut inside = vec![false; self.n()];
        for &v in members {
            inside[v] = true;
        }
        components_within(self, &inside, members).len() <= 1
    }
}

/// Connected components of the subgraph induced by `members` (flags in `inside`), each sorted.
fn components_within(g: &Graph, inside: &[bool], members: &[usize]) -> Vec<Vec<usize>> {
    let mut seen = vec![false; g.n()];
    let mut out = Vec::new();
    for &s in members {
        if seen[s] {
            continue;
        }
        seen[s] = true;
        let mut comp = vec![s];
        let mut queue = VecDeque::from([s]);
        while let Some(v) = queue.pop_front() {
            for (u, _) in g.neighbors(v) {
                if inside[u] && !seen[u] {
                    seen[u] = true;
                    comp.push(u);
                    queue.push_back(u);
                }
            }
        }
        comp.sort_unstable();
        out.push(comp);
    }
    out
}

/// The quality function Leiden maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Newman–Girvan modularity with resolution (Reichardt–Bornholdt configuration model).
    Modularity,
    /// Constant Potts model.
    Cpm,
}

/// Parameters of [`leiden`].
#[derive(Clone, Debug, PartialEq)]
pub struct LeidenParams {
    pub quality: Quality,
    /// Resolution `γ` (> 0 for CPM, ≥ 0 for modularity).
    pub resolution: f64,
    /// Refinement randomness `θ` (> 0; 0 makes the refinement greedy).
    pub theta: f64,
    /// Upper bound on full passes; passes stop earlier when one changes nothing.
    pub max_passes: usize,
    pub seed: u64,
}

impl Default for LeidenParams {
    fn default() -> Self {
        LeidenParams {
            quality: Quality::Modularity,
            resolution: 1.0,
            theta: 0.01,
            max_passes: 20,
            seed: 0,
        }
    }
}

/// The result of [`leiden`].
#[derive(Clone, Debug, PartialEq)]
pub struct LeidenResult {
    /// Community of every node, numbered by decreasing size (ties: smallest member first).
    pub membership: Vec<usize>,
    pub n_communities: usize,
    /// The quality of `membership` (Q or H as defined in the module doc).
    pub quality: f64,
    /// Passes run.
    pub passes: usize,
    /// Communities split by the final connectivity safeguard (expected 0).
    pub components_split: usize,
}

/// Modularity or CPM quality of `membership` on `g` (module doc for the formulas).
pub fn quality(g: &Graph, membership: &[usize], q: Quality, resolution: f64) -> f64 {
    let n = g.n();
    let k = membership.iter().max().map_or(0, |m| m + 1);
    let mut inner = vec![0.0f64; k];
    let mut tot = vec![0.0f64; k];
    for v in 0..n {
        let c = membership[v];
        inner[c] += g.self_loop(v);
        for (u, w) in g.neighbors(v) {
            if membership[u] == c {
                inner[c] += w;
            }
        }
        tot[c] += match q {
            Quality::Modularity => g.degree(v),
            Quality::Cpm => 1.0,
        };
    }
    match q {
        Quality::Modularity => {
            let two_m = g.total_weight();
            if two_m == 0.0 {
                return 0.0;
            }
            (0..k)
                .map(|c| inner[c] - resolution * tot[c] * tot[c] / two_m)
                .sum::<f64>()
                / two_m
        }
        Quality::Cpm => {
            0.5 * (0..k)
                .map(|c| inner[c] - resolution * tot[c] * tot[c])
                .sum::<f64>()
        }
    }
}

/// The graph at one aggregation level with its node weights.
struct Level {
    g: Graph,
    /// Node weight `w_v`: degree (modularity) or size (CPM), summed over merged nodes.
    node_w: Vec<f64>,
}

/// Scratch accumulator of edge weight from one node to each community, with the list of
/// communities touched (in first-touch order) so it can be reset cheaply.
struct EdgeTo {
    w: Vec<f64>,
    touched: Vec<usize>,
    flag: Vec<bool>,
}

impl EdgeTo {
    fn new(n: usize) -> Self {
        EdgeTo {
            w: vec![0.0; n],
            touched: Vec::new(),
            flag: vec![false; n],
        }
    }
    fn add(&mut self, c: usize, w: f64) {
        if !self.flag[c] {
            self.flag[c] = true;
            self.touched.push(c);
        }
        self.w[c] += w;
    }
    fn clear(&mut self) {
        for &c in &self.touched {
            self.w[c] = 0.0;
            self.flag[c] = false;
        }
        self.touched.clear();
    }
}

/// Run Leiden on `g` (Traag et al. 2019, Algorithm A.2), starting from singletons.
pub fn leiden(g: &Graph, params: &LeidenParams) -> Result<LeidenResult> {
    if !(params.resolution.is_finite() && params.resolution >= 0.0) {
        return Err(DarlcError::param(
            "resolution",
            format!("must be finite and ≥ 0, got {}", params.resolution),
        ));
    }
    if !(params.theta.is_finite() && params.theta >= 0.0) {
        return Err(DarlcError::param(
            "theta",
            format!("must be finite and ≥ 0, got {}", params.theta),
        ));
    }
    let n = g.n();
    let two_m = g.total_weight();
    let (gamma_eff, node_w): (f64, Vec<f64>) = match params.quality {
        Quality::Modularity => {
            let gm = if two_m > 0.0 {
                params.resolution / two_m
            } else {
                0.0
            };
            (gm, (0..n).map(|v| g.degree(v)).collect())
        }
        Quality::Cpm => (params.resolution, vec![1.0; n]),
    };
    let mut rng = rng::stream(params.seed, "leiden");
    let mut membership: Vec<usize> = (0..n).collect();
    let mut passes = 0;
    while passes < params.max_passes.max(1) {
        passes += 1;
        let next = one_pass(g, &node_w, gamma_eff, params.theta, &membership, &mut rng);
        let changed = renumber_by_size(&next) != renumber_by_size(&membership);
        membership = next;
        if !changed {
            break;
        }
    }
    let (membership, components_split) = split_disconnected(g, &membership);
    let membership = renumber_by_size(&membership);
    let n_communities = membership.iter().max().map_or(0, |m| m + 1);
    let quality = quality(g, &membership, params.quality, params.resolution);
    Ok(LeidenResult {
        membership,
        n_communities,
        quality,
        passes,
        components_split,
    })
}

/// One Leiden pass from `start` (a membership on the original graph).
fn one_pass(
    g: &Graph,
    node_w: &[f64],
    gamma: f64,
    theta: f64,
    start: &[usize],
    rng: &mut rng::Stream,
) -> Vec<usize> {
    let n = g.n();
    let mut level = Level {
        g: g.clone(),
        node_w: node_w.to_vec(),
    };
    let mut node_of: Vec<usize> = (0..n).collect(); // original node → level node
    let mut part = dense(start);
    loop {
        move_nodes_fast(&level, gamma, &mut part, rng);
        part = dense(&part);
        let n_comm = part.iter().max().map_or(0, |m| m + 1);
        if n_comm == level.g.n() {
            break;
        }
        let refined = dense(&refine(&level, gamma, theta, &part, rng));
        let n_ref = refined.iter().max().map_or(0, |m| m + 1);
        if n_ref == level.g.n() {
            // Nothing merged in the refinement: aggregation would not shrink the graph.
            break;
        }
        let mut agg_part = vec![0usize; n_ref];
        for v in 0..level.g.n() {
            agg_part[refined[v]] = part[v];
        }
        level = aggregate(&level, &refined, n_ref);
        for x in node_of.iter_mut() {
            *x = refined[*x];
        }
        part = agg_part;
    }
    node_of.iter().map(|&v| part[v]).collect()
}

/// Fast local moving (Algorithm A.2 `MoveNodesFast`): visit nodes from a queue in random order,
/// move each to the neighbouring (or an empty) community of largest gain if that gain beats
/// staying, and re-queue the neighbours outside the new community.
fn move_nodes_fast(level: &Level, gamma: f64, part: &mut [usize], rng: &mut rng::Stream) {
    let g = &level.g;
    let n = g.n();
    let mut comm_w = vec![0.0f64; n];
    let mut comm_count = vec![0usize; n];
    for v in 0..n {
        comm_w[part[v]] += level.node_w[v];
        comm_count[part[v]] += 1;
    }
    let mut empty: Vec<usize> = (0..n).rev().filter(|&c| comm_count[c] == 0).collect();
    let total_w: f64 = level.node_w.iter().sum();
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut queue: VecDeque<usize> = order.into();
    let mut queued = vec![true; n];
    let mut edge_to = EdgeTo::new(n);
    while let Some(v) = queue.pop_front() {
        queued[v] = false;
        let old = part[v];
        let wv = level.node_w[v];
        let mut strength = 0.0;
        for (u, w) in g.neighbors(v) {
            edge_to.add(part[u], w);
            strength += w;
        }
        comm_w[old] -= wv;
        comm_count[old] -= 1;
        let tol = 1e-12 * (strength + gamma * wv * total_w);
        let stay = edge_to.w[old] - gamma * wv * comm_w[old];
        let (mut best, mut best_gain) = (old, stay);
        for &c in &edge_to.touched {
            let gain = edge_to.w[c] - gamma * wv * comm_w[c];
            if gain > best_gain + tol {
                best = c;
                best_gain = gain;
            }
        }
        // An empty community has gain 0.
        if comm_count[old] > 0
            && 0.0 > best_gain + tol
            && let Some(c) = empty.pop()
        {
            best = c;
        }
        edge_to.clear();
        if comm_count[old] == 0 && best != old {
            empty.push(old);
        }
        part[v] = best;
        comm_w[best] += wv;
        comm_count[best] += 1;
        if best != old {
            for (u, _) in g.neighbors(v) {
                if !queued[u] && part[u] != best {
                    queued[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
}

/// Refinement (Algorithm A.2 `RefinePartition` / `MergeNodesSubset`): within each community S of
/// `part`, start from singletons and merge each well-connected singleton node v into a
/// well-connected sub-community C of S with `Pr ∝ exp(ΔH/θ)` over `ΔH ≥ 0` (staying alone has
/// ΔH = 0). Well-connected: `E(v, S−v) ≥ γ' w_v (W_S − w_v)`, `E(C, S−C) ≥ γ' W_C (W_S − W_C)`.
fn refine(
    level: &Level,
    gamma: f64,
    theta: f64,
    part: &[usize],
    rng: &mut rng::Stream,
) -> Vec<usize> {
    let g = &level.g;
    let n = g.n();
    let n_comm = part.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_comm];
    for v in 0..n {
        members[part[v]].push(v);
    }
    let mut refined: Vec<usize> = (0..n).collect();
    let mut sub_w: Vec<f64> = level.node_w.clone();
    let mut sub_count = vec![1usize; n];
    let mut ext = vec![0.0f64; n]; // E(C, S − C) for each sub-community C
    let mut e_vs = vec![0.0f64; n];
    let mut edge_to = EdgeTo::new(n);
    for s_members in &members {
        let s = part[s_members[0]];
        let w_s: f64 = s_members.iter().map(|&v| level.node_w[v]).sum();
        for &v in s_members {
            e_vs[v] = g
                .neighbors(v)
                .filter(|&(u, _)| part[u] == s)
                .map(|(_, w)| w)
                .sum();
            ext[v] = e_vs[v];
        }
        let mut order = s_members.clone();
        order.shuffle(rng);
        for v in order {
            let wv = level.node_w[v];
            if e_vs[v] < gamma * wv * (w_s - wv) || sub_count[refined[v]] != 1 {
                continue;
            }
            for (u, w) in g.neighbors(v) {
                if part[u] == s {
                    edge_to.add(refined[u], w);
                }
            }
            let own = refined[v];
            let mut cands: Vec<(usize, f64)> = vec![(own, 0.0)];
            for &c in &edge_to.touched {
                if c == own || ext[c] < gamma * sub_w[c] * (w_s - sub_w[c]) {
                    continue;
                }
                let gain = edge_to.w[c] - gamma * wv * sub_w[c];
                if gain >= 0.0 {
                    cands.push((c, gain));
                }
            }
            let chosen = choose(&cands, theta, rng);
            if chosen != own {
                let to_c = edge_to.w[chosen];
                sub_count[own] = 0;
                sub_w[own] = 0.0;
                ext[chosen] += e_vs[v] - 2.0 * to_c;
                sub_w[chosen] += wv;
                sub_count[chosen] += 1;
                refined[v] = chosen;
            }
            edge_to.clear();
        }
    }
    refined
}

/// Draw a candidate with probability `∝ exp(gain/θ)` (shifted by the maximum gain), or the
/// first best one when `θ = 0` or only one candidate exists.
fn choose(cands: &[(usize, f64)], theta: f64, rng: &mut rng::Stream) -> usize {
    let max_gain = cands.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    if cands.len() == 1 || theta == 0.0 {
        return cands.iter().find(|c| c.1 == max_gain).expect("non-empty").0;
    }
    let p: Vec<f64> = cands
        .iter()
        .map(|c| ((c.1 - max_gain) / theta).exp())
        .collect();
    let total: f64 = p.iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (c, pi) in cands.iter().zip(&p) {
        if r < *pi {
            return c.0;
        }
        r -= pi;
    }
    // Rounding left r ≥ the last weight: take the last candidate with positive probability.
    cands
        .iter()
        .zip(&p)
        .rev()
        .find(|(_, pi)| **pi > 0.0)
        .expect("the best candidate has probability 1")
        .0
        .0
}

/// Aggregate graph: one node per refined community; `A'_CD = Σ_{i∈C, j∈D} A_ij` (so internal
/// edges become self-loops counted in both directions).
fn aggregate(level: &Level, refined: &[usize], n_ref: usize) -> Level {
    let g = &level.g;
    let mut self_loop = vec![0.0; n_ref];
    let mut node_w = vec![0.0; n_ref];
    let mut directed = Vec::new();
    for v in 0..g.n() {
        let a = refined[v];
        node_w[a] += level.node_w[v];
        self_loop[a] += g.self_loop(v);
        for (u, w) in g.neighbors(v) {
            let b = refined[u];
            if a == b {
                self_loop[a] += w;
            } else {
                directed.push((a, b, w));
            }
        }
    }
    Level {
        g: Graph::from_directed(n_ref, directed, self_loop),
        node_w,
    }
}

/// Relabel to `0..K` in order of first appearance.
fn dense(labels: &[usize]) -> Vec<usize> {
    let mut map = vec![usize::MAX; labels.iter().max().map_or(0, |m| m + 1)];
    let mut next = 0;
    labels
        .iter()
        .map(|&l| {
            if map[l] == usize::MAX {
                map[l] = next;
                next += 1;
            }
            map[l]
        })
        .collect()
}

/// Relabel so that community 0 is the largest; ties by smallest member index.
pub fn renumber_by_size(labels: &[usize]) -> Vec<usize> {
    let d = dense(labels); // first appearance = smallest member index
    let k = d.iter().max().map_or(0, |m| m + 1);
    let mut size = vec![0usize; k];
    for &c in &d {
        size[c] += 1;
    }
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by_key(|&c| std::cmp::Reverse(size[c])); // stable: ties keep first-appearance order
    let mut rank = vec![0usize; k];
    for (r, &c) in order.iter().enumerate() {
        rank[c] = r;
    }
    d.iter().map(|&c| rank[c]).collect()
}

/// Split every community into its connected components; returns the new labels and how many
/// extra communities were created.
fn split_disconnected(g: &Graph, membership: &[usize]) -> (Vec<usize>, usize) {
    let d = dense(membership);
    let k = d.iter().max().map_or(0, |m| m + 1);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (v, &c) in d.iter().enumerate() {
        members[c].push(v);
    }
    let mut out = d.clone();
    let mut next = k;
    let mut extra = 0;
    let mut inside = vec![false; g.n()];
    for m in &members {
        for &v in m {
            inside[v] = true;
        }
        let comps = components_within(g, &inside, m);
        for comp in comps.iter().skip(1) {
            for &v in comp {
                out[v] = next;
            }
            next += 1;
            extra += 1;
        }
        for &v in m {
            inside[v] = false;
        }
    }
    (out, extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::{ari, nmi};

    /// Stochastic block model: `blocks` communities of `size` nodes, edge probability `p_in`
    /// inside and `p_out` between, unit weights. Returns the graph and planted labels.
    fn sbm(blocks: usize, size: usize, p_in: f64, p_out: f64, seed: u64) -> (Graph, Vec<usize>) {
        let mut r = rng::stream(seed, "test.sbm");
        let n = blocks * size;
        let truth: Vec<usize> = (0..n).map(|i| i / size).collect();
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                let p = if truth[i] == truth[j] { p_in } else { p_out };
                if r.random::<f64>() < p {
                    edges.push((i, j, 1.0));
                }
            }
        }
        (Graph::from_edges(n, &edges).unwrap(), truth)
    }

    fn communities(m: &[usize]) -> Vec<Vec<usize>> {
        let k = m.iter().max().map_or(0, |x| x + 1);
        let mut out = vec![Vec::new(); k];
        for (v, &c) in m.iter().enumerate() {
            out[c].push(v);
        }
        out
    }

    #[test]
    fn graph_from_edges_sums_and_degrees() {
        let g =
            Graph::from_edges(3, &[(0, 1, 1.0), (1, 0, 2.0), (2, 2, 4.0), (1, 2, 0.5)]).unwrap();
        assert_eq!(g.neighbors(1).collect::<Vec<_>>(), vec![(0, 3.0), (2, 0.5)]);
        assert_eq!(g.degree(2), 4.5);
        assert_eq!(g.total_weight(), 3.0 + 3.5 + 4.5);
        assert!(Graph::from_edges(2, &[(0, 2, 1.0)]).is_err());
        assert!(Graph::from_edges(2, &[(0, 1, -1.0)]).is_err());
    }

    #[test]
    fn modularity_hand_computed() {
        // Two triangles joined by one edge (0-1-2, 3-4-5, 2-3): m = 7, degrees 2,2,3,3,2,2.
        // Q = Σ_c [e_c/m − (K_c/2m)²] = 2·(3/7 − (7/14)²) = 6/7 − 1/2 = 0.357142857…
        let e = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)];
        let edges: Vec<_> = e.iter().map(|&(a, b)| (a, b, 1.0)).collect();
        let g = Graph::from_edges(6, &edges).unwrap();
        let q = quality(&g, &[0, 0, 0, 1, 1, 1], Quality::Modularity, 1.0);
        assert!((q - (6.0 / 7.0 - 0.5)).abs() < 1e-15);
        // CPM γ = 0.5: Σ_c [e_c − γ n_c²/2] = 2·(3 − 0.5·9/2) = 1.5.
        let h = quality(&g, &[0, 0, 0, 1, 1, 1], Quality::Cpm, 0.5);
        assert!((h - 1.5).abs() < 1e-15);
        let r = leiden(&g, &LeidenParams::default()).unwrap();
        assert_eq!(r.membership, vec![0, 0, 0, 1, 1, 1]);
    }

    #[test]
    fn recovers_planted_sbm() {
        // 4 blocks of 40 nodes, p_in = 0.3, p_out = 0.01: expected within-degree 11.7 vs 1.2
        // across, a clear SBM.
        for seed in 0..3 {
            let (g, truth) = sbm(4, 40, 0.3, 0.01, seed);
            for quality_fn in [Quality::Modularity, Quality::Cpm] {
                let params = LeidenParams {
                    quality: quality_fn,
                    // CPM resolution between p_out and p_in (density threshold).
                    resolution: if quality_fn == Quality::Cpm { 0.1 } else { 1.0 },
                    seed,
                    ..Default::default()
                };
                let r = leiden(&g, &params).unwrap();
                let v = nmi(&truth, &r.membership).unwrap();
                assert!(v >= 0.95, "seed {seed} {quality_fn:?}: NMI {v}");
                assert!(ari(&truth, &r.membership).unwrap() >= 0.9);
                // Quality at least that of the planted partition (minus a small slack).
                let planted = super::quality(&g, &truth, quality_fn, params.resolution);
                assert!(
                    r.quality >= planted - 1e-9 * planted.abs().max(1.0),
                    "{quality_fn:?}: {} < planted {}",
                    r.quality,
                    planted
                );
            }
        }
    }

    #[test]
    fn communities_are_connected_on_random_graphs() {
        // Sparse Erdős–Rényi and weakly structured SBMs at several resolutions: every community
        // must induce a connected subgraph without the final safeguard having to split it.
        for seed in 0..6 {
            let (g, _) = if seed % 2 == 0 {
                sbm(1, 150, 0.02, 0.0, seed)
            } else {
                sbm(5, 30, 0.15, 0.03, seed)
            };
            for (q, res) in [
                (Quality::Modularity, 1.0),
                (Quality::Modularity, 3.0),
                (Quality::Cpm, 0.05),
            ] {
                let params = LeidenParams {
                    quality: q,
                    resolution: res,
                    seed,
                    ..Default::default()
                };
                let r = leiden(&g, &params).unwrap();
                assert_eq!(r.components_split, 0, "seed {seed} {q:?} {res}");
                for c in communities(&r.membership) {
                    assert!(g.is_connected_subset(&c), "seed {seed}: {c:?} disconnected");
                }
            }
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (g, _) = sbm(5, 30, 0.2, 0.03, 11);
        let p = LeidenParams {
            seed: 5,
            ..Default::default()
        };
        let a = leiden(&g, &p).unwrap();
        let b = leiden(&g, &p).unwrap();
        assert_eq!(a, b);
        // Same on one thread (nothing here is parallel, but the contract is explicit).
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let c = pool.install(|| leiden(&g, &p).unwrap());
        assert_eq!(a, c);
    }

    #[test]
    fn karate_club_reaches_the_known_optimum() {
        // Zachary's karate club, unweighted (edge list from networkx.karate_club_graph(), weights
        // dropped). The maximum modularity is 0.4197896 (Brandes et al. 2008, proven optimal,
        // 4 communities); Leiden should find it for these seeds.
        const E: [(usize, usize); 78] = [
            (0, 1),
            (0, 2),
            (0, 3),
            (0, 4),
            (0, 5),
            (0, 6),
            (0, 7),
            (0, 8),
            (0, 10),
            (0, 11),
            (0, 12),
            (0, 13),
            (0, 17),
            (0, 19),
            (0, 21),
            (0, 31),
            (1, 2),
            (1, 3),
            (1, 7),
            (1, 13),
            (1, 17),
            (1, 19),
            (1, 21),
            (1, 30),
            (2, 3),
            (2, 7),
            (2, 8),
            (2, 9),
            (2, 13),
            (2, 27),
            (2, 28),
            (2, 32),
            (3, 7),
            (3, 12),
            (3, 13),
            (4, 6),
            (4, 10),
            (5, 6),
            (5, 10),
            (5, 16),
            (6, 16),
            (8, 30),
            (8, 32),
            (8, 33),
            (9, 33),
            (13, 33),
            (14, 32),
            (14, 33),
            (15, 32),
            (15, 33),
            (18, 32),
            (18, 33),
            (19, 33),
            (20, 32),
            (20, 33),
            (22, 32),
            (22, 33),
            (23, 25),
            (23, 27),
            (23, 29),
            (23, 32),
            (23, 33),
            (24, 25),
            (24, 27),
            (24, 31),
            (25, 31),
            (26, 29),
            (26, 33),
            (27, 33),
            (28, 31),
            (28, 33),
            (29, 32),
            (29, 33),
            (30, 32),
            (30, 33),
            (31, 32),
            (31, 33),
            (32, 33),
        ];
        let edges: Vec<_> = E.iter().map(|&(a, b)| (a, b, 1.0)).collect();
        let g = Graph::from_edges(34, &edges).unwrap();
        for seed in 0..5 {
            let p = LeidenParams {
                seed,
                ..Default::default()
            };
            let r = leiden(&g, &p).unwrap();
            assert!(r.quality > 0.41978, "seed {seed}: Q = {}", r.quality);
            assert_eq!(r.n_communities, 4);
        }
    }

    #[test]
    fn edgeless_and_tiny_graphs() {
        let g = Graph::from_edges(3, &[]).unwrap();
        let r = leiden(&g, &LeidenParams::default()).unwrap();
        assert_eq!(r.membership, vec![0, 1, 2]);
        let g = Graph::from_edges(0, &[]).unwrap();
        assert_eq!(
            leiden(&g, &LeidenParams::default()).unwrap().n_communities,
            0
        );
        let bad = LeidenParams {
            resolution: f64::NAN,
            ..Default::default()
        };
        assert!(leiden(&g, &bad).is_err());
    }

    #[test]
    fn renumbering_by_size() {
        assert_eq!(
            renumber_by_size(&[5, 2, 2, 9, 9, 9]),
            vec![2, 1, 1, 0, 0, 0]
        );
        assert_eq!(renumber_by_size(&[1, 0]), vec![0, 1]);
    }
}
