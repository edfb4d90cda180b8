//! The tape: a flat list of nodes (node id = index), each holding its value and the op that made
//! it, and the recording methods (`matmul`, `add`, `layer_norm`, `attention`, …) that run an op's
//! forward kernel and push its node. The ops are listed in [`Op`] (`op.rs`); [`Tape::backward`]
//! (`backward.rs`) walks the list once in reverse with one `match` over them.
//!
//! * Parameters and inputs are explicit leaves ([`Tape::param`], [`Tape::constant`]).
//! * A node records its op only if a parameter flows into it; otherwise it is a constant leaf.
//! * A tape made with [`Tape::no_grad`] records no ops: every result is a constant leaf, nothing is
//!   kept for a backward pass (evaluation paths use it).

use super::op::Op;
pub use super::op::Var;
use super::ops::elementwise::{Binary, Unary};
use super::ops::{
    attention, cholesky, elementwise, linear, matmul, norm, reduce, segment, shape, softmax,
};
use super::profile;
use crate::float::Float;
use ndarray::{ArrayD, ArrayView2, Ix2, Ix3, IxDyn};
use std::sync::Arc;

/// One node: its value, how it was made, and whether any parameter flows into it.
#[derive(Clone, Debug)]
pub struct Node<T: Float> {
    pub value: ArrayD<T>,
    pub op: Op<T>,
    pub needs_grad: bool,
}

/// A computation record over `T` (f32 or f64).
#[derive(Clone, Debug)]
pub struct Tape<T: Float> {
    /// The nodes in recording order (node id = index); [`Tape::backward`] walks them in reverse.
    pub(super) nodes: Vec<Node<T>>,
    /// Whether ops are recorded (false for [`Tape::no_grad`]).
    pub(super) record: bool,
}

impl<T: Float> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Tape<T> {
    /// A recording tape.
    pub fn new() -> Self {
        Tape {
            nodes: Vec::new(),
            record: true,
        }
    }
    /// A tape that records nothing: for evaluation passes.
    pub fn no_grad() -> Self {
        Tape {
            nodes: Vec::new(),
            record: false,
        }
    }
    /// Whether ops are recorded.
    pub fn is_recording(&self) -> bool {
        self.record
    }
    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    /// True if no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    /// A node's value.
    pub fn value(&self, v: Var) -> &ArrayD<T> {
        &self.nodes[v.0].value
    }
    /// A node's shape.
    pub fn shape(&self, v: Var) -> &[usize] {
        self.nodes[v.0].value.shape()
    }
    /// The scalar value of a one-element node.
    pub fn scalar(&self, v: Var) -> T {
        let a = self.value(v);
        assert_eq!(a.len(), 1, "scalar() on a node with {} elements", a.len());
        *a.iter().next().expect("one element")
    }
    /// Drop every node from `len` on, keeping the first `len` (e.g. a large constant input reused
    /// across training steps without copying it into a fresh tape each step).
    pub fn truncate(&mut self, len: usize) {
        self.nodes.truncate(len);
    }
    /// A node (for printing or study).
    pub fn node(&self, v: Var) -> &Node<T> {
        &self.nodes[v.0]
    }
    /// Whether a parameter flows into `v` (its gradient is wanted).
    pub(super) fn needs(&self, v: Var) -> bool {
        self.nodes[v.0].needs_grad
    }

    fn push(&mut self, value: ArrayD<T>, op: Op<T>, parents: &[Var]) -> Var {
        self.profile_gap(op.name());
        let needs_grad = self.record && parents.iter().any(|p| self.nodes[p.0].needs_grad);
        let op = if needs_grad { op } else { Op::Leaf };
        self.nodes.push(Node {
            value,
            op,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }

    /// Charge the time since the previous push (on any tape of this thread) to `name`, only while
    /// profiling.
    fn profile_gap(&mut self, name: &'static str) {
        if profile::enabled() {
            profile::gap(name);
        }
    }

    /// A leaf whose gradient is wanted.
    pub fn param(&mut self, value: ArrayD<T>) -> Var {
        self.profile_gap("leaf");
        let needs_grad = self.record;
        self.nodes.push(Node {
            value,
            op: Op::Leaf,
            needs_grad,
        });
        Var(self.nodes.len() - 1)
    }
    /// A leaf without gradient.
    pub fn constant(&mut self, value: ArrayD<T>) -> Var {
        self.profile_gap("leaf");
        self.nodes.push(Node {
            value,
            op: Op::Leaf,
            needs_grad: false,
        });
        Var(self.nodes.len() - 1)
    }
    /// A 0-d constant.
    pub fn scalar_const(&mut self, x: f64) -> Var {
        self.constant(ArrayD::from_elem(IxDyn(&[]), T::of(x)))
    }

    // ---------------------------------------------------------------- products

    /// `a·b` for `a: [.., k]`, `b: [k, n]` (leading axes of `a` are flattened as rows).
    pub fn matmul(&mut self, a: Var, b: Var) -> Var {
        self.matmul_t(a, b, false, false)
    }
    /// `op(a)·op(b)` with optional transposes (2-D operands when a transpose is used).
    pub fn matmul_t(&mut self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        let (av, bv) = (self.value(a), self.value(b));
        assert_eq!(
            bv.ndim(),
            2,
            "matmul: right operand must be 2-D, got {:?}",
            bv.shape()
        );
        let out = if av.ndim() == 2 || ta {
            let a2 = av
                .view()
                .into_dimensionality::<Ix2>()
                .expect("matmul: left operand 2-D when transposed");
            let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
            let a2 = if ta { a2.reversed_axes() } else { a2 };
            let b2 = if tb { b2.reversed_axes() } else { b2 };
            assert_eq!(
                a2.dim().1,
                b2.dim().0,
                "matmul: shapes {:?} and {:?}",
                av.shape(),
                bv.shape()
            );
            matmul::matmul(a2, b2).into_dyn()
        } else {
            let a2 = matmul::flatten_rows(av);
            let b2 = bv.view().into_dimensionality::<Ix2>().expect("2-D");
            let b2 = if tb { b2.reversed_axes() } else { b2 };
            assert_eq!(
                a2.dim().1,
                b2.dim().0,
                "matmul: shapes {:?} and {:?}",
                av.shape(),
                bv.shape()
            );
            let mut shape = av.shape().to_vec();
            *shape.last_mut().expect("axis") = b2.dim().1;
            matmul::matmul(a2.view(), b2)
                .into_shape_with_order(IxDyn(&shape))
                .expect("unflatten")
        };
        self.push(out, Op::MatMul { a, b, ta, tb }, &[a, b])
    }
    /// Batched `op(a_i)·op(b_i)` for `a, b: [bt, ., .]`.
    pub fn batch_matmul(&mut self, a: Var, b: Var, ta: bool, tb: bool) -> Var {
        let a3 = self
            .value(a)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("batch_matmul: 3-D operands");
        let b3 = self
            .value(b)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("batch_matmul: 3-D operands");
        let out = matmul::batch_matmul(a3, b3, ta, tb).into_dyn();
        self.push(out, Op::BatchMatMul { a, b, ta, tb }, &[a, b])
    }

    // ---------------------------------------------------------------- arithmetic

    fn binary(&mut self, kind: Binary, a: Var, b: Var) -> Var {
        let (av, bv) = (self.value(a), self.value(b));
        assert!(
            elementwise::broadcast_shape(av.shape(), bv.shape()).is_some(),
            "{kind:?}: shapes {:?} and {:?} do not broadcast",
            av.shape(),
            bv.shape()
        );
        let out = kind.forward(av, bv);
        self.push(out, Op::Binary { kind, a, b }, &[a, b])
    }
    /// `a + b` (broadcasting).
    pub fn add(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Add, a, b)
    }
    /// `a − b` (broadcasting).
    pub fn sub(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Sub, a, b)
    }
    /// `a ⊙ b` (broadcasting).
    pub fn mul(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Mul, a, b)
    }
    /// `a / b` (broadcasting).
    pub fn div(&mut self, a: Var, b: Var) -> Var {
        self.binary(Binary::Div, a, b)
    }
    /// Elementwise `f(x)`.
    pub fn unary(&mut self, kind: Unary, x: Var) -> Var {
        let out = kind.forward(self.value(x));
        self.push(out, Op::Unary { kind, x }, &[x])
    }
    /// `c·x`.
    pub fn scale(&mut self, x: Var, c: f64) -> Var {
        self.unary(Unary::Scale(c), x)
    }
    /// `x + c`.
    pub fn shift(&mut self, x: Var, c: f64) -> Var {
        self.unary(Unary::Shift(c), x)
    }
    /// `−x`.
    pub fn neg(&mut self, x: Var) -> Var {
        self.unary(Unary::Neg, x)
    }
    /// `x²`.
    pub fn square(&mut self, x: Var) -> Var {
        self.unary(Unary::Square, x)
    }
    /// `eˣ`.
    pub fn exp(&mut self, x: Var) -> Var {
        self.unary(Unary::Exp, x)
    }
    /// `ln x`.
    pub fn ln(&mut self, x: Var) -> Var {
        self.unary(Unary::Ln, x)
    }
    /// `ln(1 + x)`.
    pub fn log1p(&mut self, x: Var) -> Var {
        self.unary(Unary::Log1p, x)
    }
    /// `eˣ − 1`.
    pub fn expm1(&mut self, x: Var) -> Var {
        self.unary(Unary::Expm1, x)
    }
    /// `√x`.
    pub fn sqrt(&mut self, x: Var) -> Var {
        self.unary(Unary::Sqrt, x)
    }
    /// Logistic sigmoid.
    pub fn sigmoid(&mut self, x: Var) -> Var {
        self.unary(Unary::Sigmoid, x)
    }
    /// ELU (α = 1).
    pub fn elu(&mut self, x: Var) -> Var {
        self.unary(Unary::Elu, x)
    }
    /// SELU.
    pub fn selu(&mut self, x: Var) -> Var {
        self.unary(Unary::Selu, x)
    }
    /// LeakyReLU with the given negative slope.
    pub fn leaky_relu(&mut self, x: Var, slope: f64) -> Var {
        self.unary(Unary::LeakyRelu(slope), x)
    }
    /// `max(x, 0)`.
    pub fn relu(&mut self, x: Var) -> Var {
        self.unary(Unary::Relu, x)
    }
    /// Exact GELU.
    pub fn gelu(&mut self, x: Var) -> Var {
        self.unary(Unary::Gelu, x)
    }
    /// `min(max(x, lo), hi)`.
    pub fn clamp(&mut self, x: Var, lo: f64, hi: f64) -> Var {
        self.unary(Unary::Clamp(lo, hi), x)
    }

    // ---------------------------------------------------------------- reductions

    /// Sum over `axis` (kept as size 1 if `keep`).
    pub fn sum_axis(&mut self, x: Var, axis: usize, keep: bool) -> Var {
        let out = reduce::sum_axis(self.value(x), axis, keep);
        self.push(out, Op::Sum { x, axis, keep }, &[x])
    }
    /// Mean over `axis`.
    pub fn mean_axis(&mut self, x: Var, axis: usize, keep: bool) -> Var {
        let n = self.shape(x)[axis] as f64;
        let s = self.sum_axis(x, axis, keep);
        self.scale(s, 1.0 / n)
    }
    /// Sum of all elements (0-d).
    pub fn sum(&mut self, x: Var) -> Var {
        let out = reduce::sum_all(self.value(x));
        self.push(out, Op::SumAll { x }, &[x])
    }
    /// Mean of all elements (0-d).
    pub fn mean(&mut self, x: Var) -> Var {
        let n = self.value(x).len() as f64;
        let s = self.sum(x);
        self.scale(s, 1.0 / n)
    }

    // ---------------------------------------------------------------- layout

    /// Same elements (row-major), new shape.
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Var {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            self.value(x).len(),
            "reshape {:?} to {:?}",
            self.shape(x),
            shape
        );
        let out = shape::reshape(self.value(x), shape);
        self.push(out, Op::Reshape { x }, &[x])
    }
    /// Permute axes.
    pub fn permute(&mut self, x: Var, axes: &[usize]) -> Var {
        let out = shape::permute(self.value(x), axes);
        self.push(
            out,
            Op::Permute {
                x,
                axes: axes.to_vec(),
            },
            &[x],
        )
    }
    /// Transpose a 2-D node.
    pub fn transpose(&mut self, x: Var) -> Var {
        assert_eq!(self.value(x).ndim(), 2, "transpose needs 2-D");
        self.permute(x, &[1, 0])
    }
    /// Concatenate along `axis`.
    pub fn concat(&mut self, xs: &[Var], axis: usize) -> Var {
        let vals: Vec<&ArrayD<T>> = xs.iter().map(|v| self.value(*v)).collect();
        let out = shape::concat(&vals, axis);
        self.push(
            out,
            Op::Concat {
                xs: xs.to_vec(),
                axis,
            },
            xs,
        )
    }
    /// `x[start..end]` along `axis`.
    pub fn slice(&mut self, x: Var, axis: usize, start: usize, end: usize) -> Var {
        let out = shape::slice(self.value(x), axis, start, end);
        self.push(
            out,
            Op::Slice {
                x,
                axis,
                start,
                end,
            },
            &[x],
        )
    }
    /// Rows `idx` of `x` along axis 0.
    pub fn gather_rows(&mut self, x: Var, idx: Arc<[usize]>) -> Var {
        let out = shape::gather_rows(self.value(x), &idx);
        self.push(out, Op::GatherRows { x, idx }, &[x])
    }
    /// `out[idx[i]] += x[i]` into `n` rows.
    pub fn scatter_add_rows(&mut self, x: Var, idx: Arc<[usize]>, n: usize) -> Var {
        assert_eq!(
            idx.len(),
            self.shape(x)[0],
            "scatter_add_rows: one index per row"
        );
        let out = shape::scatter_add_rows(self.value(x), &idx, n);
        self.push(out, Op::ScatterAddRows { x, idx, n }, &[x])
    }

    // ---------------------------------------------------------------- softmax family

    /// Softmax over the last axis.
    pub fn softmax(&mut self, x: Var) -> Var {
        let out = softmax::softmax(self.value(x));
        self.push(out, Op::Softmax { x }, &[x])
    }
    /// Log-softmax over the last axis.
    pub fn log_softmax(&mut self, x: Var) -> Var {
        let out = softmax::log_softmax(self.value(x));
        self.push(out, Op::LogSoftmax { x }, &[x])
    }
    /// Log-sum-exp over the last axis (removed).
    pub fn logsumexp(&mut self, x: Var) -> Var {
        let out = softmax::logsumexp(self.value(x));
        self.push(out, Op::LogSumExp { x }, &[x])
    }
    /// Softmax within CSR segments `offsets[v]..offsets[v+1]` of axis 0.
    pub fn segment_softmax(&mut self, x: Var, offsets: Arc<[usize]>) -> Var {
        assert_eq!(
            *offsets.last().unwrap_or(&0),
            self.shape(x)[0],
            "segment offsets must cover axis 0"
        );
        let out = softmax::segment_softmax(self.value(x), &offsets);
        self.push(out, Op::SegmentSoftmax { x, offsets }, &[x])
    }

    /// Fused edge aggregation `out[v] = Σ_{e∈seg(v)} α_e x[src_e]` for `α` with one element per
    /// edge and `x: [n_src, F]`; result `[n_dst, F]` (method §3.3 Eq. 1).
    pub fn segment_weighted_sum(
        &mut self,
        alpha: Var,
        x: Var,
        idx: Arc<segment::SegmentIndex>,
    ) -> Var {
        assert_eq!(self.value(alpha).len(), idx.n_edges(), "one α per edge");
        assert_eq!(
            self.shape(x).len(),
            2,
            "segment_weighted_sum: x must be 2-D"
        );
        assert_eq!(
            self.shape(x)[0],
            idx.n_src,
            "segment_weighted_sum: source rows"
        );
        let out = segment::segment_weighted_sum(self.value(alpha), self.value(x), &idx);
        self.push(out, Op::SegmentWeightedSum { alpha, x, idx }, &[alpha, x])
    }

    // ---------------------------------------------------------------- normalisation

    /// LayerNorm over the last axis with affine `γ`, `β`.
    pub fn layer_norm(&mut self, x: Var, gamma: Var, beta: Var, eps: f64) -> Var {
        let (out, saved) = norm::layer_norm(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            T::of(eps),
        );
        self.push(
            out,
            Op::LayerNorm {
                x,
                gamma,
                beta,
                saved: Box::new(saved),
            },
            &[x, gamma, beta],
        )
    }
    /// Train-mode BatchNorm over the rows of `x: [n, c]`. Also returns the batch mean and biased
    /// variance (for the running statistics, method §5).
    pub fn batch_norm_train(
        &mut self,
        x: Var,
        gamma: Var,
        beta: Var,
        eps: f64,
    ) -> (Var, ndarray::Array1<T>, ndarray::Array1<T>) {
        let (out, saved) = norm::batch_norm_train(
            self.value(x),
            self.value(gamma),
            self.value(beta),
            T::of(eps),
        );
        let (m, v) = (saved.mean.clone(), saved.var.clone());
        let y = self.push(
            out,
            Op::BatchNorm {
                x,
                gamma,
                beta,
                saved: Box::new(saved),
            },
            &[x, gamma, beta],
        );
        (y, m, v)
    }
    /// `x / max(‖x‖, eps)` over the last axis.
    pub fn l2_normalize(&mut self, x: Var, eps: f64) -> Var {
        let (out, norms) = norm::l2_normalize(self.value(x), T::of(eps));
        self.push(
            out,
            Op::L2Normalize {
                x,
                eps: T::of(eps),
                norms,
            },
            &[x],
        )
    }

    // ---------------------------------------------------------------- Cholesky pieces

    /// `L⁻¹ B` for lower-triangular `L: [.., d, d]`, `B: [.., d, m]`.
    pub fn tri_solve_lower(&mut self, l: Var, b: Var) -> Var {
        let out = cholesky::tri_solve_lower(self.value(l), self.value(b));
        self.push(out, Op::TriSolveLower { l, b }, &[l, b])
    }
    /// `ln|L Lᵀ| = 2 Σ_j ln L_jj` per matrix.
    pub fn log_det_chol(&mut self, l: Var) -> Var {
        let out = cholesky::log_det_chol(self.value(l));
        self.push(out, Op::LogDetChol { l }, &[l])
    }

    // ---------------------------------------------------------------- attention

    /// Multi-head scaled dot-product attention on the packed projection `qkv: [B, L, 3D]`
    /// (`[Q | K | V]`), `heads` heads; returns the head-merged `[B, L, D]` (method §4.1 `MHSA`
    /// before `W_o`).
    pub fn attention(&mut self, qkv: Var, heads: usize) -> Var {
        let x = self
            .value(qkv)
            .view()
            .into_dimensionality::<Ix3>()
            .expect("attention: qkv must be [B, L, 3D]");
        let keep = self.record && self.needs(qkv);
        let (out, saved) = attention::attention(x, heads, keep);
        self.push(
            out.into_dyn(),
            Op::Attention {
                qkv,
                heads,
                saved: Box::new(saved),
            },
            &[qkv],
        )
    }

    /// The affine layer `x W + b` (`x: [.., k]`, `W: [k, n]`, `b: [n]`) as one op.
    pub fn linear(&mut self, x: Var, w: Var, b: Var) -> Var {
        self.linear_plus(x, w, b, None)
    }

    /// `x W + b + r` as one op: an affine layer and the residual connection around it (`r` has
    /// the output's shape). Equal to `add(r, linear(x, w, b))`.
    pub fn linear_add(&mut self, x: Var, w: Var, b: Var, r: Var) -> Var {
        self.linear_plus(x, w, b, Some(r))
    }

    /// `x W + b`, plus `r` when given ([`Self::linear`], [`Self::linear_add`]).
    pub fn linear_plus(&mut self, x: Var, w: Var, b: Var, r: Option<Var>) -> Var {
        let rv = r.map(|r| self.value(r));
        let out = linear::linear(self.value(x), self.weight(x, w), self.bias(w, b), rv);
        let parents: Vec<Var> = [x, w, b].into_iter().chain(r).collect();
        self.push(out, Op::Linear { x, w, b, r }, &parents)
    }

    /// `GELU(x W + b)` (exact GELU) as one op. Equal to `gelu(linear(x, w, b))`.
    pub fn linear_gelu(&mut self, x: Var, w: Var, b: Var) -> Var {
        let (pre, out) = linear::linear_gelu(self.value(x), self.weight(x, w), self.bias(w, b));
        let pre = Box::new(pre);
        self.push(out, Op::LinearGelu { x, w, b, pre }, &[x, w, b])
    }

    /// `W` of an affine layer as a matrix whose row count is `x`'s width.
    fn weight(&self, x: Var, w: Var) -> ArrayView2<'_, T> {
        let wv = self
            .value(w)
            .view()
            .into_dimensionality::<Ix2>()
            .expect("linear: W must be 2-D");
        assert_eq!(
            self.shape(x).last(),
            Some(&wv.dim().0),
            "linear: input width and W rows differ"
        );
        wv
    }

    /// `b` of an affine layer as a vector of `W`'s column count.
    fn bias(&self, w: Var, b: Var) -> ndarray::ArrayView1<'_, T> {
        let bv = self
            .value(b)
            .view()
            .into_dimensionality::<ndarray::Ix1>()
            .expect("linear: b must be 1-D");
        assert_eq!(Some(&bv.len()), self.shape(w).get(1), "linear: bias width");
        bv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn nodes_are_recorded_in_call_order_with_their_ops() {
        let mut t = Tape::<f64>::new();
        let a = t.param(array![1.0, 2.0].into_dyn());
        let c = t.constant(array![3.0, 4.0].into_dyn());
        let s = t.mul(a, c);
        let y = t.sum(s);
        assert_eq!((a, c, s, y), (Var(0), Var(1), Var(2), Var(3)));
        assert_eq!(t.len(), 4);
        let names: Vec<&str> = (0..t.len()).map(|i| t.node(Var(i)).op.name()).collect();
        assert_eq!(names, ["leaf", "leaf", "binary.mul", "sum_all"]);
        assert!(matches!(
            t.node(s).op,
            Op::Binary {
                a: Var(0),
                b: Var(1),
                ..
            }
        ));
        assert_eq!(t.value(s), &array![3.0, 8.0].into_dyn());
        assert_eq!(t.scalar(y), 11.0);
        // Truncating keeps the first nodes: the next node reuses the id.
        t.truncate(2);
        assert_eq!(t.square(c), Var(2));
    }

    #[test]
    fn only_nodes_a_parameter_flows_into_keep_their_op() {
        let mut t = Tape::<f64>::new();
        let p = t.param(array![1.0].into_dyn());
        let c = t.constant(array![2.0].into_dyn());
        let cc = t.exp(c);
        let pc = t.add(p, cc);
        assert!(!t.node(cc).needs_grad);
        assert!(matches!(t.node(cc).op, Op::Leaf));
        assert!(t.node(pc).needs_grad);
        assert!(matches!(t.node(pc).op, Op::Binary { .. }));
    }

    #[test]
    fn a_no_grad_tape_computes_values_and_records_no_op() {
        let mut t = Tape::<f64>::no_grad();
        assert!(!t.is_recording());
        let p = t.param(array![1.0, -2.0].into_dyn());
        let y = t.relu(p);
        assert_eq!(t.value(y), &array![1.0, 0.0].into_dyn());
        assert!((0..t.len()).all(|i| {
            let n = t.node(Var(i));
            !n.needs_grad && matches!(n.op, Op::Leaf)
        }));
    }
}
