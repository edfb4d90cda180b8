//! The reverse pass (method §17): [`Tape::backward`] walks the node list once from the root down,
//! and one `match` over [`Op`] hands each node's upstream gradient to its op's vector–Jacobian
//! product (the kernels of [`super::ops`]), adding the contributions into the parents' slots.
//!
//! * Gradients live in a `Vec` indexed by node id, never a map; a parent used several times
//!   receives the sum of its contributions, added in the (fixed) order the walk meets them.
//! * A node's gradient is dropped as soon as its op has passed it on; leaves keep theirs
//!   ([`Grads`]). A leaf nothing flowed into has no entry ([`Grads::get`] is `None`).

use super::op::Op;
use super::ops::elementwise::Unary;
use super::ops::{attention, cholesky, linear, matmul, norm, reduce, segment, shape, softmax};
use super::profile;
use super::tape::{Node, Tape, Var};
use crate::float::Float;
use ndarray::{ArrayD, Ix2, Ix3, IxDyn};
use std::time::Instant;

/// Gradients after [`Tape::backward`], indexed by node id; only leaves keep theirs.
#[derive(Clone, Debug)]
pub struct Grads<T: Float> {
    grads: Vec<Option<ArrayD<T>>>,
}

impl<T: Float> Grads<T> {
    /// The gradient of a leaf, or `None` if nothing flowed into it.
    pub fn get(&self, v: Var) -> Option<&ArrayD<T>> {
        self.grads.get(v.0).and_then(|g| g.as_ref())
    }
    /// The gradient of a leaf, or zeros of `shape`.
    pub fn get_or_zeros(&self, v: Var, shape: &[usize]) -> ArrayD<T> {
        self.get(v)
            .cloned()
            .unwrap_or_else(|| ArrayD::zeros(IxDyn(shape)))
    }
    /// Take ownership of a leaf's gradient.
    pub fn take(&mut self, v: Var) -> Option<ArrayD<T>> {
        self.grads.get_mut(v.0).and_then(|g| g.take())
    }
}

impl<T: Float> Tape<T> {
    // ---------------------------------------------------------------- backward

    /// Reverse pass from `root`, seeded with ones (for a scalar loss: `∂root/∂leaf`). Returns the
    /// gradients of every leaf that needs one.
    pub fn backward(&self, root: Var) -> Grads<T> {
        let seed = ArrayD::from_elem(self.value(root).raw_dim(), T::one());
        self.backward_with(root, seed)
    }

    /// Reverse pass from `root` seeded with `seed` (a vector–Jacobian product).
    pub fn backward_with(&self, root: Var, seed: ArrayD<T>) -> Grads<T> {
        assert!(self.record, "backward on a no_grad tape");
        assert_eq!(seed.shape(), self.shape(root), "seed shape");
        let mut grads: Vec<Option<ArrayD<T>>> = vec![None; root.0 + 1];
        if self.nodes[root.0].needs_grad {
            grads[root.0] = Some(seed);
        }
        for i in (0..=root.0).rev() {
            let node = &self.nodes[i];
            if matches!(node.op, Op::Leaf) {
                continue; // leaves keep their gradient
            }
            let Some(g) = grads[i].take() else { continue };
            if profile::enabled() {
                let t0 = Instant::now();
                self.backward_node(node, &g, &mut grads);
                drop(g);
                profile::record("bwd", node.op.name(), t0.elapsed());
            } else {
                self.backward_node(node, &g, &mut grads);
            }
        }
        if profile::enabled() {
            profile::restart_clock();
        }
        Grads { grads }
    }

    /// The single dispatch over ops: each arm computes the parents' gradient contributions.
    fn backward_node(&self, node: &Node<T>, g: &ArrayD<T>, grads: &mut [Option<ArrayD<T>>]) {
        let val = |v: Var| &self.nodes[v.0].value;
        let accumulate = |grads: &mut [Option<ArrayD<T>>], v: Var, g: Option<ArrayD<T>>| {
            if self.nodes[v.0].needs_grad {
                accumulate(grads, v, g)
            }
        };
        match &node.op {
            Op::Leaf => {}
            Op::MatMul { a, b, ta, tb } => {
                let (av, bv) = (val(*a), val(*b));
                let need = (self.needs(*a), self.needs(*b));
                if av.ndim() == 2 || *ta {
                    let g2 = g.view().into_dimensionality::<Ix2>().expect("2-D");
                    let (ga, gb) = matmul::matmul_backward(
                        g2,
                        av.view().into_dimensionality().expect("2-D"),
                        bv.view().into_dimensionality().expect("2-D"),
                        *ta,
                        *tb,
                        need,
                    );
                    accumulate(grads, *a, ga.map(|x| x.into_dyn()));
                    accumulate(grads, *b, gb.map(|x| x.into_dyn()));
                } else {
                    let (a2, g2) = (matmul::flatten_rows(av), matmul::flatten_rows(g));
                    let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
                    let (ga, gb) =
                        matmul::matmul_backward(g2.view(), a2.view(), b2, false, *tb, need);
                    accumulate(
                        grads,
                        *a,
                        ga.map(|x| {
                            x.into_shape_with_order(IxDyn(av.shape()))
                                .expect("unflatten")
                        }),
                    );
                    accumulate(grads, *b, gb.map(|x| x.into_dyn()));
                }
            }
            Op::BatchMatMul { a, b, ta, tb } => {
                let (ga, gb) = matmul::batch_matmul_backward(
                    g.view().into_dimensionality::<Ix3>().expect("3-D"),
                    val(*a).view().into_dimensionality().expect("3-D"),
                    val(*b).view().into_dimensionality().expect("3-D"),
                    *ta,
                    *tb,
                    (self.needs(*a), self.needs(*b)),
                );
                accumulate(grads, *a, ga.map(|x| x.into_dyn()));
                accumulate(grads, *b, gb.map(|x| x.into_dyn()));
            }
            Op::Binary { kind, a, b } => {
                let (ga, gb) = kind.backward(g, val(*a), val(*b), (self.needs(*a), self.needs(*b)));
                accumulate(grads, *a, ga);
                accumulate(grads, *b, gb);
            }
            Op::Unary { kind, x } => {
                accumulate(grads, *x, Some(kind.backward(g, val(*x), &node.value)));
            }
            Op::Sum { x, axis, keep } => {
                accumulate(
                    grads,
                    *x,
                    Some(reduce::sum_axis_backward(g, val(*x).shape(), *axis, *keep)),
                );
            }
            Op::SumAll { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(reduce::sum_all_backward(g, val(*x).shape())),
                );
            }
            Op::Reshape { x } => {
                accumulate(grads, *x, Some(shape::reshape(g, val(*x).shape())));
            }
            Op::Permute { x, axes } => {
                accumulate(
                    grads,
                    *x,
                    Some(shape::permute(g, &shape::inverse_permutation(axes))),
                );
            }
            Op::Concat { xs, axis } => {
                let mut start = 0;
                for x in xs {
                    let len = val(*x).shape()[*axis];
                    if self.needs(*x) {
                        accumulate(grads, *x, Some(shape::slice(g, *axis, start, start + len)));
                    }
                    start += len;
                }
            }
            Op::Slice {
                x,
                axis,
                start,
                end,
            } => {
                accumulate(
                    grads,
                    *x,
                    Some(shape::slice_backward(
                        g,
                        val(*x).shape(),
                        *axis,
                        *start,
                        *end,
                    )),
                );
            }
            Op::GatherRows { x, idx } => {
                let n = val(*x).shape()[0];
                accumulate(grads, *x, Some(shape::scatter_add_rows(g, idx, n)));
            }
            Op::ScatterAddRows { x, idx, .. } => {
                accumulate(grads, *x, Some(shape::gather_rows(g, idx)));
            }
            Op::Softmax { x } => {
                accumulate(grads, *x, Some(softmax::softmax_backward(g, &node.value)));
            }
            Op::LogSoftmax { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::log_softmax_backward(g, &node.value)),
                );
            }
            Op::LogSumExp { x } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::logsumexp_backward(g, val(*x), &node.value)),
                );
            }
            Op::SegmentSoftmax { x, offsets } => {
                accumulate(
                    grads,
                    *x,
                    Some(softmax::segment_softmax_backward(g, &node.value, offsets)),
                );
            }
            Op::SegmentWeightedSum { alpha, x, idx } => {
                let need = (self.needs(*alpha), self.needs(*x));
                let (da, dx) =
                    segment::segment_weighted_sum_backward(g, val(*alpha), val(*x), idx, need);
                accumulate(grads, *alpha, da);
                accumulate(grads, *x, dx);
            }
            Op::LayerNorm {
                x,
                gamma,
                beta,
                saved,
            } => {
                let (dx, dg, db) = norm::layer_norm_backward(g, val(*x), val(*gamma), saved);
                accumulate(grads, *x, Some(dx));
                accumulate(grads, *gamma, Some(dg));
                accumulate(grads, *beta, Some(db));
            }
            Op::BatchNorm {
                x,
                gamma,
                beta,
                saved,
            } => {
                let (dx, dg, db) = norm::batch_norm_train_backward(g, val(*gamma), saved);
                accumulate(grads, *x, Some(dx));
                accumulate(grads, *gamma, Some(dg));
                accumulate(grads, *beta, Some(db));
            }
            Op::L2Normalize { x, eps, norms } => {
                accumulate(
                    grads,
                    *x,
                    Some(norm::l2_normalize_backward(g, &node.value, norms, *eps)),
                );
            }
            Op::TriSolveLower { l, b } => {
                let (dl, db) = cholesky::tri_solve_lower_backward(
                    g,
                    val(*l),
                    &node.value,
                    (self.needs(*l), self.needs(*b)),
                );
                accumulate(grads, *l, dl);
                accumulate(grads, *b, db);
            }
            Op::LogDetChol { l } => {
                accumulate(grads, *l, Some(cholesky::log_det_chol_backward(g, val(*l))));
            }
            Op::Linear { x, w, b, r } => {
                if let Some(r) = r
                    && self.needs(*r)
                {
                    accumulate(grads, *r, Some(g.clone()));
                }
                self.affine_backward(grads, g, *x, *w, *b);
            }
            Op::LinearGelu { x, w, b, pre } => {
                let gp = Unary::Gelu.backward(g, pre, &node.value);
                self.affine_backward(grads, &gp, *x, *w, *b);
            }
            Op::Attention { qkv, heads, saved } => {
                let d = attention::attention_backward(
                    g.view().into_dimensionality::<Ix3>().expect("3-D"),
                    val(*qkv).view().into_dimensionality().expect("3-D"),
                    node.value.view().into_dimensionality().expect("3-D"),
                    saved,
                    *heads,
                );
                accumulate(grads, *qkv, Some(d.into_dyn()));
            }
        }
    }

    /// Accumulate `(∂x, ∂W, ∂b)` of the affine layer `x W + b` for the upstream `g`.
    fn affine_backward(
        &self,
        grads: &mut [Option<ArrayD<T>>],
        g: &ArrayD<T>,
        x: Var,
        w: Var,
        b: Var,
    ) {
        let (gx, gw, gb) = linear::linear_backward(
            g,
            self.value(x),
            self.value(w).view().into_dimensionality().expect("2-D"),
            (self.needs(x), self.needs(w), self.needs(b)),
        );
        accumulate(grads, x, gx);
        accumulate(grads, w, gw.map(|a| a.into_dyn()));
        accumulate(grads, b, gb.map(|a| a.into_dyn()));
    }
}

/// Add a gradient contribution for `v` (no-op for `None`).
/// Add a gradient contribution for `v` (no-op for `None`).
fn accumulate<T: Float>(grads: &mut [Option<ArrayD<T>>], v: Var, g: Option<ArrayD<T>>) {
    let Some(g) = g else { return };
    match &mut grads[v.0] {
        Some(acc) => super::ops::par::add_assign(acc, &g),
        slot @ None => *slot = Some(g),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn backward_of_a_small_graph_matches_hand_computed_values() {
        // y = Σ (a ⊙ b + a²) at a = [1, 2], b = [3, −1]:
        // ∂y/∂a = b + 2a = [5, 3], ∂y/∂b = a = [1, 2]; y = 3 − 2 + 1 + 4 = 6.
        let mut t = Tape::<f64>::new();
        let a = t.param(array![1.0, 2.0].into_dyn());
        let b = t.param(array![3.0, -1.0].into_dyn());
        let ab = t.mul(a, b);
        let a2 = t.square(a);
        let s = t.add(ab, a2);
        let y = t.sum(s);
        assert_eq!(t.scalar(y), 6.0);
        let g = t.backward(y);
        assert_eq!(g.get(a), Some(&array![5.0, 3.0].into_dyn()));
        assert_eq!(g.get(b), Some(&array![1.0, 2.0].into_dyn()));
        // Interior nodes do not keep a gradient.
        assert!(g.get(ab).is_none() && g.get(s).is_none());
    }

    #[test]
    fn a_node_used_twice_receives_the_sum_of_both_contributions() {
        // y = Σ (x ⊙ x) through one `mul` with the same parent twice, and z = Σ (2x + x) through
        // two ops: ∂y/∂x = 2x, ∂z/∂x = 3.
        let mut t = Tape::<f64>::new();
        let x = t.param(array![0.5, -3.0].into_dyn());
        let xx = t.mul(x, x);
        let y = t.sum(xx);
        assert_eq!(t.backward(y).get(x), Some(&array![1.0, -6.0].into_dyn()));
        let x2 = t.scale(x, 2.0);
        let s = t.add(x2, x);
        let z = t.sum(s);
        assert_eq!(t.backward(z).get(x), Some(&array![3.0, 3.0].into_dyn()));
    }

    #[test]
    fn leaves_nothing_flows_into_have_no_gradient() {
        let mut t = Tape::<f64>::new();
        let used = t.param(array![1.0, 2.0].into_dyn());
        let unused = t.param(array![7.0].into_dyn());
        let c = t.constant(array![4.0, 5.0].into_dyn());
        let p = t.mul(used, c);
        let y = t.sum(p);
        // A parameter made after the root is outside the reverse pass.
        let late = t.param(array![1.0].into_dyn());
        let mut g = t.backward(y);
        assert_eq!(g.get(used), Some(&array![4.0, 5.0].into_dyn()));
        assert!(g.get(unused).is_none() && g.get(c).is_none() && g.get(late).is_none());
        assert_eq!(g.get_or_zeros(unused, &[1]), array![0.0].into_dyn());
        assert_eq!(g.take(used), Some(array![4.0, 5.0].into_dyn()));
        assert!(g.get(used).is_none());
    }

    #[test]
    fn a_seeded_backward_is_a_vector_jacobian_product() {
        // y = 3x (elementwise); seed v: ∂(v·y)/∂x = 3v.
        let mut t = Tape::<f64>::new();
        let x = t.param(array![1.0, 2.0, 3.0].into_dyn());
        let y = t.scale(x, 3.0);
        let g = t.backward_with(y, array![1.0, 0.0, -2.0].into_dyn());
        assert_eq!(g.get(x), Some(&array![3.0, 0.0, -6.0].into_dyn()));
    }

    #[test]
    fn attention_saves_the_probabilities_on_the_generic_path() {
        use crate::autodiff::ops::attention::AttentionSaved;
        // f64 never takes the fused f32 path: the op keeps A [B, h, L, L], rows summing to 1.
        let mut t = Tape::<f64>::new();
        let qkv = t.param(
            ndarray::Array3::from_shape_fn((2, 3, 12), |(b, l, c)| {
                ((b * 36 + l * 12 + c) as f64 * 0.37).sin()
            })
            .into_dyn(),
        );
        let o = t.attention(qkv, 2);
        let Op::Attention { saved, .. } = &t.node(o).op else {
            panic!("attention node")
        };
        let AttentionSaved::Probs(p) = saved.as_ref() else {
            panic!("f64 attention must save the probabilities")
        };
        assert_eq!(p.shape(), &[2, 2, 3, 3]);
        for row in p.rows() {
            assert!((row.sum() - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn attention_saves_the_row_log_sum_exps_on_the_fused_f32_path() {
        use crate::autodiff::ops::attention::AttentionSaved;
        use crate::autodiff::ops::fast32;
        if fast32::level() == fast32::Level::None {
            return; // no fused kernels on this CPU: the f32 op takes the generic path
        }
        // Head width 16: the fused kernels keep lse [B, h, L]; the backward recomputes A from it
        // and agrees with the f64 generic path to f32 accuracy.
        let x = ndarray::Array3::from_shape_fn((2, 5, 96), |(b, l, c)| {
            ((b * 480 + l * 96 + c) as f64 * 0.37).sin()
        });
        let grad = |x: ndarray::ArrayD<f64>| {
            let mut t = Tape::<f64>::new();
            let v = t.param(x);
            let o = t.attention(v, 2);
            let s = t.square(o);
            let y = t.sum(s);
            t.backward(y).get(v).expect("grad").clone()
        };
        let mut t = Tape::<f32>::new();
        let v = t.param(x.mapv(|a| a as f32).into_dyn());
        let o = t.attention(v, 2);
        let Op::Attention { saved, .. } = &t.node(o).op else {
            panic!("attention node")
        };
        let AttentionSaved::RowLse(lse) = saved.as_ref() else {
            panic!("fused f32 attention must save the row log-sum-exps")
        };
        assert_eq!(lse.shape(), &[2, 2, 5]);
        let s = t.square(o);
        let y = t.sum(s);
        let g32 = t.backward(y).get(v).expect("grad").clone();
        let g64 = grad(x.into_dyn());
        let scale = g64.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in g32.iter().zip(g64.iter()) {
            assert!((*a as f64 - b).abs() <= 1e-4 * scale, "{a} vs {b}");
        }
    }
}
