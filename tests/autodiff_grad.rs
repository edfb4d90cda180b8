//! Finite-difference gradient checks (method §17 points 1–8) for every op of the tape.
//! Test names contain `grad`, so `cargo test grad` runs them all.

use darlc::autodiff::gradcheck::assert_grad;
use darlc::autodiff::{Tape, Unary, Var, composite};
use darlc::rng;
use ndarray::{ArrayD, IxDyn};
use rand::Rng;
use std::sync::Arc;

/// Uniform values in `[lo, hi)` from a named stream.
fn rand(shape: &[usize], lo: f64, hi: f64, name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(1234, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(lo..hi))
}

/// Values away from 0 by at least 0.1 (for ops with a kink at 0), random sign.
fn away_from_zero(shape: &[usize], name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(99, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let m = r.random_range(0.1..1.5);
        if r.random_bool(0.5) { m } else { -m }
    })
}

#[test]
fn grad_matmul_plain_transposed_and_batched_leading() {
    let a = rand(&[4, 3], -1.0, 1.0, "a");
    let b = rand(&[3, 5], -1.0, 1.0, "b");
    assert_grad("matmul", &[a.clone(), b.clone()], |t, v| {
        t.matmul(v[0], v[1])
    });
    let at = rand(&[3, 4], -1.0, 1.0, "at");
    let bt = rand(&[5, 3], -1.0, 1.0, "bt");
    assert_grad("matmul ta", &[at.clone(), b.clone()], |t, v| {
        t.matmul_t(v[0], v[1], true, false)
    });
    assert_grad("matmul tb", &[a.clone(), bt.clone()], |t, v| {
        t.matmul_t(v[0], v[1], false, true)
    });
    assert_grad("matmul ta tb", &[at, bt], |t, v| {
        t.matmul_t(v[0], v[1], true, true)
    });
    // Leading batch axes on the left operand ([2, 4, 3]·[3, 5]), as a Linear layer on tokens.
    let a3 = rand(&[2, 4, 3], -1.0, 1.0, "a3");
    assert_grad("matmul leading axes", &[a3, b.clone()], |t, v| {
        t.matmul(v[0], v[1])
    });
    let a3t = rand(&[2, 4, 3], -1.0, 1.0, "a3t");
    let b5t = rand(&[5, 3], -1.0, 1.0, "b5t");
    assert_grad("matmul leading axes tb", &[a3t, b5t], |t, v| {
        t.matmul_t(v[0], v[1], false, true)
    });
    // Large enough to take the parallel split paths (directional check).
    let al = rand(&[300, 40], -1.0, 1.0, "al");
    let bl = rand(&[40, 30], -1.0, 1.0, "bl");
    assert_grad("matmul large", &[al, bl], |t, v| t.matmul(v[0], v[1]));
}

#[test]
fn grad_batch_matmul_all_transposes() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
        let a = if ta {
            rand(&[3, 4, 2], -1.0, 1.0, "ba")
        } else {
            rand(&[3, 2, 4], -1.0, 1.0, "ba")
        };
        let b = if tb {
            rand(&[3, 5, 4], -1.0, 1.0, "bb")
        } else {
            rand(&[3, 4, 5], -1.0, 1.0, "bb")
        };
        assert_grad(&format!("batch_matmul {ta} {tb}"), &[a, b], |t, v| {
            t.batch_matmul(v[0], v[1], ta, tb)
        });
    }
}

#[test]
fn grad_broadcasting_arithmetic() {
    let a = rand(&[3, 4], -1.0, 1.0, "x");
    let row = rand(&[4], -1.0, 1.0, "row");
    let col = rand(&[3, 1], -1.0, 1.0, "col");
    let pos = rand(&[3, 4], 0.5, 2.0, "pos");
    assert_grad("add bias", &[a.clone(), row.clone()], |t, v| {
        t.add(v[0], v[1])
    });
    assert_grad("sub column", &[a.clone(), col.clone()], |t, v| {
        t.sub(v[0], v[1])
    });
    assert_grad("sub reversed", &[col.clone(), a.clone()], |t, v| {
        t.sub(v[0], v[1])
    });
    assert_grad("mul same", &[a.clone(), pos.clone()], |t, v| {
        t.mul(v[0], v[1])
    });
    assert_grad("mul row", &[a.clone(), row.clone()], |t, v| {
        t.mul(v[0], v[1])
    });
    assert_grad("div same", &[a.clone(), pos.clone()], |t, v| {
        t.div(v[0], v[1])
    });
    let posrow = rand(&[4], 0.5, 2.0, "posrow");
    assert_grad("div row", &[a.clone(), posrow], |t, v| t.div(v[0], v[1]));
    let s = rand(&[], 0.5, 2.0, "scalar");
    assert_grad("mul scalar tensor", &[a.clone(), s], |t, v| {
        t.mul(v[0], v[1])
    });
    // [K,1,d] − [1,N,d] broadcasting in both operands at once.
    let p = rand(&[2, 1, 3], -1.0, 1.0, "p");
    let q = rand(&[1, 4, 3], -1.0, 1.0, "q");
    assert_grad("sub both broadcast", &[p, q], |t, v| t.sub(v[0], v[1]));
    assert_grad("scale shift neg square", &[a], |t, v| {
        let x = t.scale(v[0], 1.7);
        let x = t.shift(x, -0.3);
        let x = t.neg(x);
        t.square(x)
    });
}

#[test]
fn grad_elementwise_functions() {
    let any = rand(&[3, 5], -2.0, 2.0, "any");
    let kinked = away_from_zero(&[3, 5], "kinked");
    let pos = rand(&[3, 5], 0.2, 3.0, "pos");
    let clamp_in = kinked.mapv(|x| {
        if x.abs() < 0.5 {
            x * 0.3
        } else {
            x.signum() * (x.abs() + 0.1)
        }
    });
    let cases: Vec<(&str, Unary, &ArrayD<f64>)> = vec![
        ("exp", Unary::Exp, &any),
        ("ln", Unary::Ln, &pos),
        ("log1p", Unary::Log1p, &pos),
        ("expm1", Unary::Expm1, &any),
        ("sqrt", Unary::Sqrt, &pos),
        ("sigmoid", Unary::Sigmoid, &any),
        ("elu", Unary::Elu, &kinked),
        ("selu", Unary::Selu, &kinked),
        ("leaky_relu", Unary::LeakyRelu(0.01), &kinked),
        ("relu", Unary::Relu, &kinked),
        ("gelu", Unary::Gelu, &any),
        // Clamp inside the open interval and outside it: inputs kept ≥ 0.1 from the edges ±0.5.
        ("clamp", Unary::Clamp(-0.5, 0.5), &clamp_in),
    ];
    for (name, op, x) in cases {
        assert_grad(name, std::slice::from_ref(x), |t, v| t.unary(op, v[0]));
    }
}

#[test]
fn grad_reductions_and_layout() {
    let x = rand(&[2, 3, 4], -1.0, 1.0, "x");
    for axis in 0..3 {
        for keep in [false, true] {
            assert_grad(
                &format!("sum axis {axis} keep {keep}"),
                std::slice::from_ref(&x),
                |t, v| t.sum_axis(v[0], axis, keep),
            );
        }
        assert_grad(
            &format!("mean axis {axis}"),
            std::slice::from_ref(&x),
            |t, v| t.mean_axis(v[0], axis, false),
        );
    }
    assert_grad("sum all", std::slice::from_ref(&x), |t, v| t.sum(v[0]));
    assert_grad("mean all", std::slice::from_ref(&x), |t, v| t.mean(v[0]));
    assert_grad("reshape", std::slice::from_ref(&x), |t, v| {
        t.reshape(v[0], &[6, 4])
    });
    assert_grad("permute", std::slice::from_ref(&x), |t, v| {
        t.permute(v[0], &[2, 0, 1])
    });
    let m = rand(&[3, 5], -1.0, 1.0, "m");
    assert_grad("transpose", std::slice::from_ref(&m), |t, v| {
        t.transpose(v[0])
    });
    let m2 = rand(&[2, 5], -1.0, 1.0, "m2");
    assert_grad("concat axis 0", &[m.clone(), m2], |t, v| {
        t.concat(&[v[0], v[1]], 0)
    });
    let m3 = rand(&[3, 2], -1.0, 1.0, "m3");
    assert_grad("concat axis 1", &[m.clone(), m3], |t, v| {
        t.concat(&[v[0], v[1]], 1)
    });
    assert_grad("slice", std::slice::from_ref(&x), |t, v| {
        t.slice(v[0], 2, 1, 3)
    });
}

#[test]
fn grad_gather_and_scatter_add() {
    let x = rand(&[5, 3], -1.0, 1.0, "x");
    // Token selection with a repeated index (gradients must add) and unshuffle order.
    let idx: Arc<[usize]> = Arc::from(vec![4usize, 0, 2, 2, 1]);
    assert_grad("gather rows", std::slice::from_ref(&x), |t, v| {
        t.gather_rows(v[0], idx.clone())
    });
    let e = rand(&[6, 3], -1.0, 1.0, "e");
    let dst: Arc<[usize]> = Arc::from(vec![0usize, 0, 1, 2, 2, 2]);
    assert_grad("scatter add rows", &[e], |t, v| {
        t.scatter_add_rows(v[0], dst.clone(), 4)
    });
}

#[test]
fn grad_softmax_family() {
    let x = rand(&[3, 5], -2.0, 2.0, "x");
    assert_grad("softmax", std::slice::from_ref(&x), |t, v| t.softmax(v[0]));
    assert_grad("log_softmax", std::slice::from_ref(&x), |t, v| {
        t.log_softmax(v[0])
    });
    assert_grad("logsumexp", std::slice::from_ref(&x), |t, v| {
        t.logsumexp(v[0])
    });
    let x3 = rand(&[2, 3, 4], -2.0, 2.0, "x3");
    assert_grad("softmax 3-d", &[x3], |t, v| t.softmax(v[0]));
}

#[test]
fn grad_segment_softmax() {
    // Three neighbourhoods of sizes 2, 1, 4 (CSR offsets), one and two heads.
    let offsets: Arc<[usize]> = Arc::from(vec![0usize, 2, 3, 7]);
    let e = rand(&[7], -1.0, 1.0, "e");
    assert_grad("segment softmax", &[e], |t, v| {
        t.segment_softmax(v[0], offsets.clone())
    });
    let e2 = rand(&[7, 2], -1.0, 1.0, "e2");
    assert_grad("segment softmax 2 heads", &[e2], |t, v| {
        t.segment_softmax(v[0], offsets.clone())
    });
}

#[test]
fn grad_segment_weighted_sum() {
    use darlc::autodiff::ops::segment::SegmentIndex;
    // 4 destinations (one empty), 5 source rows (one never read), 8 edges with a repeated source
    // inside a segment and sources read by several segments.
    let idx = Arc::new(SegmentIndex::new(
        vec![0, 3, 3, 5, 8],
        vec![0, 2, 2, 4, 1, 0, 3, 4],
        5,
    ));
    let alpha = rand(&[8, 1], -1.0, 1.0, "swsum.alpha");
    let x = rand(&[5, 3], -1.0, 1.0, "swsum.x");
    assert_grad("segment weighted sum", &[alpha, x], |t, v| {
        t.segment_weighted_sum(v[0], v[1], idx.clone())
    });
    let alpha1 = rand(&[8], -1.0, 1.0, "swsum.alpha1");
    let x1 = rand(&[5, 1], -1.0, 1.0, "swsum.x1");
    assert_grad("segment weighted sum 1-d α", &[alpha1, x1], |t, v| {
        t.segment_weighted_sum(v[0], v[1], idx.clone())
    });
}

#[test]
fn grad_layer_norm() {
    let x = rand(&[4, 6], -1.0, 1.0, "x");
    let g = rand(&[6], 0.5, 1.5, "g");
    let b = rand(&[6], -0.5, 0.5, "b");
    assert_grad("layer norm", &[x, g.clone(), b.clone()], |t, v| {
        t.layer_norm(v[0], v[1], v[2], 1e-5)
    });
    let x3 = rand(&[2, 3, 6], -1.0, 1.0, "x3");
    assert_grad("layer norm 3-d", &[x3, g, b], |t, v| {
        t.layer_norm(v[0], v[1], v[2], 1e-5)
    });
}

#[test]
fn grad_batch_norm_train_and_eval() {
    // Train mode couples the rows of the batch through the mean and variance.
    let x = rand(&[5, 3], -1.0, 1.0, "x");
    let g = rand(&[3], 0.5, 1.5, "g");
    let b = rand(&[3], -0.5, 0.5, "b");
    assert_grad(
        "batch norm train",
        &[x.clone(), g.clone(), b.clone()],
        |t, v| t.batch_norm_train(v[0], v[1], v[2], 1e-5).0,
    );
    // Eval mode: constants rm, rv; an affine map composed from elementary ops.
    let rm = rand(&[3], -0.2, 0.2, "rm");
    let rv = rand(&[3], 0.5, 1.5, "rv");
    assert_grad("batch norm eval", &[x, g, b], |t, v| {
        let m = t.constant(rm.clone());
        let s = t.constant(rv.mapv(|v| 1.0 / (v + 1e-5).sqrt()));
        let c = t.sub(v[0], m);
        let c = t.mul(c, s);
        let c = t.mul(c, v[1]);
        t.add(c, v[2])
    });
}

#[test]
fn grad_l2_normalize() {
    let x = rand(&[4, 5], -1.0, 1.0, "x");
    assert_grad("l2 normalize", &[x], |t, v| t.l2_normalize(v[0], 1e-12));
    // Rows below the clamp: gradient is g / eps.
    let tiny = rand(&[2, 3], -1e-4, 1e-4, "tiny");
    assert_grad("l2 normalize clamped", &[tiny], |t, v| {
        t.l2_normalize(v[0], 1.0)
    });
}

/// A well-conditioned lower-triangular `[k, d, d]` factor.
fn chol_factor(k: usize, d: usize, name: &str) -> ArrayD<f64> {
    let mut l = rand(&[k, d, d], -0.3, 0.3, name);
    for c in 0..k {
        for i in 0..d {
            for j in i + 1..d {
                l[[c, i, j]] = 0.0;
            }
            l[[c, i, i]] = 1.0 + 0.2 * i as f64 + 0.1 * c as f64;
        }
    }
    l
}

#[test]
fn grad_cholesky_pieces() {
    let l = chol_factor(2, 3, "l");
    let b = rand(&[2, 3, 4], -1.0, 1.0, "b");
    // Only the lower triangle of L is a parameter: mask the upper part so the check ignores it.
    let lower = |t: &mut Tape<f64>, l: Var| {
        let mut mask = ArrayD::zeros(IxDyn(&[2, 3, 3]));
        for c in 0..2 {
            for i in 0..3 {
                for j in 0..=i {
                    mask[[c, i, j]] = 1.0;
                }
            }
        }
        let m = t.constant(mask);
        t.mul(l, m)
    };
    assert_grad("tri solve", &[l.clone(), b], |t, v| {
        let l = lower(t, v[0]);
        t.tri_solve_lower(l, v[1])
    });
    assert_grad("log det chol", std::slice::from_ref(&l), |t, v| {
        let l = lower(t, v[0]);
        t.log_det_chol(l)
    });
    let z = rand(&[4, 3], -1.0, 1.0, "z");
    let mu = rand(&[2, 3], -1.0, 1.0, "mu");
    assert_grad("mahalanobis", &[z, mu, l], |t, v| {
        let l = lower(t, v[2]);
        composite::mahalanobis(t, v[0], v[1], l)
    });
    // η parameterisation of method §9.3: L = strictly-lower part + diag(exp(η)).
    let off = rand(&[2, 3, 3], -0.3, 0.3, "off");
    let eta = rand(&[2, 3], -0.2, 0.2, "eta");
    assert_grad("log det via eta", &[off, eta], |t, v| {
        let mut strict = ArrayD::zeros(IxDyn(&[2, 3, 3]));
        let mut eye = ArrayD::zeros(IxDyn(&[1, 3, 3]));
        for i in 0..3 {
            eye[[0, i, i]] = 1.0;
            for j in 0..i {
                for c in 0..2 {
                    strict[[c, i, j]] = 1.0;
                }
            }
        }
        let sm = t.constant(strict);
        let e = t.constant(eye);
        let lo = t.mul(v[0], sm);
        let d = t.exp(v[1]);
        let d = t.reshape(d, &[2, 3, 1]);
        let dm = t.mul(d, e);
        let l = t.add(lo, dm);
        t.log_det_chol(l)
    });
}

#[test]
fn grad_composite_mse_and_chain() {
    // A small chain that reuses a node (fan-out): gradients from both uses must add.
    let x = rand(&[3, 4], -1.0, 1.0, "x");
    let w = rand(&[4, 4], -1.0, 1.0, "w");
    assert_grad("fan-out chain", &[x, w], |t, v| {
        let h = t.matmul(v[0], v[1]);
        let a = t.gelu(h);
        let b = t.sigmoid(h);
        let c = t.mul(a, b);
        composite::mse(t, c, h)
    });
}

#[test]
fn grad_harness_detects_a_wrong_gradient() {
    use darlc::autodiff::gradcheck::GradCheck;
    // Treating an input as a constant inside the function makes the autodiff gradient zero while
    // the finite difference is not: the harness must report it.
    let x = rand(&[3], 0.5, 1.0, "x");
    let report = GradCheck::default().run(&[x], |t, v| {
        let c = t.constant(t.value(v[0]).clone());
        let y = t.mul(v[0], c); // d/dx (x·c) with c ≡ x: autodiff sees c, the truth is 2x
        t.sum(y)
    });
    assert_eq!(
        report.failures.len(),
        3,
        "each of the 3 elements is off by a factor 2"
    );
}

mod random_shapes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

        /// Broadcasting arithmetic on random compatible shapes (a dimension of either operand
        /// may be 1, and the right operand may have fewer axes).
        #[test]
        fn grad_broadcast_random_shapes(dims in proptest::collection::vec(1usize..4, 1..4),
                                        ones in proptest::collection::vec(any::<bool>(), 4),
                                        drop in 0usize..2, seed in 0u64..1000) {
            let a_shape = dims.clone();
            let mut b_shape: Vec<usize> = dims.iter().zip(&ones).map(|(&d, &o)| if o { 1 } else { d }).collect();
            let drop = drop.min(b_shape.len() - 1);
            b_shape.drain(..drop);
            let a = rand(&a_shape, -1.0, 1.0, &format!("pa{seed}"));
            let b = rand(&b_shape, 0.5, 1.5, &format!("pb{seed}"));
            assert_grad("add", &[a.clone(), b.clone()], |t, v| t.add(v[0], v[1]));
            assert_grad("mul", &[a.clone(), b.clone()], |t, v| t.mul(v[0], v[1]));
            assert_grad("div", &[a, b], |t, v| t.div(v[0], v[1]));
        }

        /// Matrix products of random sizes, including degenerate 1-wide ones.
        #[test]
        fn grad_matmul_random_shapes(m in 1usize..6, k in 1usize..6, n in 1usize..6, seed in 0u64..1000) {
            let a = rand(&[m, k], -1.0, 1.0, &format!("ma{seed}"));
            let b = rand(&[k, n], -1.0, 1.0, &format!("mb{seed}"));
            assert_grad("matmul", &[a, b], |t, v| t.matmul(v[0], v[1]));
        }

        /// LayerNorm and softmax over random widths.
        #[test]
        fn grad_norms_random_shapes(rows in 1usize..5, w in 2usize..7, seed in 0u64..1000) {
            let x = rand(&[rows, w], -1.0, 1.0, &format!("nx{seed}"));
            let g = rand(&[w], 0.5, 1.5, &format!("ng{seed}"));
            let b = rand(&[w], -0.5, 0.5, &format!("nb{seed}"));
            assert_grad("layer norm", &[x.clone(), g, b], |t, v| t.layer_norm(v[0], v[1], v[2], 1e-5));
            assert_grad("softmax", &[x], |t, v| t.softmax(v[0]));
        }
    }
}

#[test]
fn grad_fused_attention_and_linear() {
    // Fused multi-head attention on packed qkv [B=2, L=3, 3D=12] with 2 heads (d_h = 2).
    let qkv = rand(&[2, 3, 12], -1.0, 1.0, "qkv");
    assert_grad("attention", std::slice::from_ref(&qkv), |t, v| {
        t.attention(v[0], 2)
    });
    // Its value equals the composed definition softmax(Q_h K_hᵀ/√d_h) V_h, heads concatenated.
    let mut t = Tape::<f64>::no_grad();
    let x = t.constant(qkv);
    let fused = t.attention(x, 2);
    let mut heads = Vec::new();
    for h in 0..2 {
        let q = t.slice(x, 2, 2 * h, 2 * h + 2);
        let k = t.slice(x, 2, 4 + 2 * h, 4 + 2 * h + 2);
        let v = t.slice(x, 2, 8 + 2 * h, 8 + 2 * h + 2);
        let s = t.batch_matmul(q, k, false, true);
        let s = t.scale(s, 1.0 / 2f64.sqrt());
        let a = t.softmax(s);
        heads.push(t.batch_matmul(a, v, false, false));
    }
    let composed = t.concat(&heads, 2);
    for (a, b) in t.value(fused).iter().zip(t.value(composed).iter()) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
    // Affine layer x W + b with leading axes.
    let x = rand(&[2, 3, 4], -1.0, 1.0, "lx");
    let w = rand(&[4, 5], -1.0, 1.0, "lw");
    let b = rand(&[5], -1.0, 1.0, "lb");
    assert_grad("linear", &[x, w, b], |t, v| t.linear(v[0], v[1], v[2]));
}

#[test]
fn grad_attention_head_widths_of_the_fused_f32_kernels() {
    // The f32 fast path handles d_h ∈ {16, 32} (d_h 8 runs the generic f32 code); the f64 oracle
    // they are compared against (next test) is checked here by finite differences at d_h = 8
    // (B = 1, L = 5, D = 16, 2 heads).
    let qkv = rand(&[1, 5, 48], -1.0, 1.0, "qkv8");
    assert_grad("attention d_h 8", std::slice::from_ref(&qkv), |t, v| {
        t.attention(v[0], 2)
    });
}

/// `(out, ∂qkv)` of attention on a `T` tape for `qkv` and the upstream `seed` (both given in f64).
fn attention_value_and_vjp<T: darlc::float::Float>(
    qkv: &ArrayD<f64>,
    seed: &ArrayD<f64>,
    heads: usize,
) -> (ArrayD<f64>, ArrayD<f64>, ArrayD<f64>) {
    let mut t = Tape::<T>::new();
    let x = t.param(qkv.mapv(T::of));
    let y = t.attention(x, heads);
    let grads = t.backward_with(y, seed.mapv(T::of));
    let mut ng = Tape::<T>::no_grad();
    let xn = ng.constant(qkv.mapv(T::of));
    let yn = ng.attention(xn, heads);
    (
        t.value(y).mapv(|v| v.f64()),
        grads.get(x).expect("gradient").mapv(|v| v.f64()),
        ng.value(yn).mapv(|v| v.f64()),
    )
}

#[test]
fn attention_f32_fast_path_matches_f64_oracle() {
    // B = 3, L = 37 (not a multiple of the 8-row blocks or the 16 lanes: exercises remainders and
    // padding), head widths 8 (generic f32 code), 16, 32 (fused kernels). Tolerance: f32 has ε = 1.2e-7; every output is a sum of
    // at most max(L, d_h) = 37 products plus a softmax of scores |s| ≤ d_h·1·1/√d_h ≤ 5.7, so the
    // accumulated rounding error is ≲ 37·ε·(max |value|) ≈ 4.4e-6·max; we allow 1e-5·max(1, max).
    for &(d, heads) in &[(32usize, 4usize), (64, 4), (64, 2)] {
        let qkv = rand(&[3, 37, 3 * d], -1.0, 1.0, &format!("fq{d}{heads}"));
        let seed = rand(&[3, 37, d], -1.0, 1.0, &format!("fs{d}{heads}"));
        let (y64, g64, n64) = attention_value_and_vjp::<f64>(&qkv, &seed, heads);
        let (y32, g32, n32) = attention_value_and_vjp::<f32>(&qkv, &seed, heads);
        assert_eq!(y64, n64, "f64: no-grad forward equals the recorded forward");
        assert_eq!(y32, n32, "f32: no-grad forward equals the recorded forward");
        for (name, a, b) in [("out", &y32, &y64), ("∂qkv", &g32, &g64)] {
            let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            let err = a
                .iter()
                .zip(b.iter())
                .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
            assert!(
                err < 1e-5 * scale,
                "D {d} heads {heads} {name}: max error {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn gelu_f32_fast_path_matches_f64_oracle_on_the_tape() {
    // Forward and backward of the vectorised f32 GELU against f64 over [−8, 8] (2 parallel
    // chunks + a remainder). Bound: relative 2e-6 + 1.2e-7·x² (the f32 rounding of the exponent
    // −x²/2 in the erfc tail), plus absolute 3e-7 for the derivative, which cancels near its
    // zero at x ≈ −0.75; see `fast32::tests::gelu_matches_f64_reference`. The gradient is also
    // scaled by the seed (≤ 1.5) and rounded once more, hence 4e-7 there. The f64 oracle computes
    // ½x(1 + erf(x/√2)), whose 1 + erf cancels in the negative tail (absolute error ≈ ε₆₄·|x| ≈
    // 2e-15 at x = −8, 2 % of gelu(−8) = −4.9e-15), so values get an absolute 1e-14.
    let n = 40_000;
    let x = ArrayD::from_shape_fn(IxDyn(&[n]), |i| -8.0 + 16.0 * i[0] as f64 / n as f64);
    let seed = rand(&[n], 0.5, 1.5, "gelu_seed");
    let run = |f32_: bool| -> (Vec<f64>, Vec<f64>) {
        if f32_ {
            let mut t = Tape::<f32>::new();
            let v = t.param(x.mapv(|v| v as f32));
            let y = t.gelu(v);
            let g = t.backward_with(y, seed.mapv(|v| v as f32));
            (
                t.value(y).iter().map(|&v| v as f64).collect(),
                g.get(v).expect("grad").iter().map(|&v| v as f64).collect(),
            )
        } else {
            let mut t = Tape::<f64>::new();
            let v = t.param(x.mapv(|v| (v as f32) as f64));
            let y = t.gelu(v);
            let g = t.backward_with(y, seed.mapv(|v| (v as f32) as f64));
            (
                t.value(y).iter().copied().collect(),
                g.get(v).expect("grad").iter().copied().collect(),
            )
        }
    };
    let (y32, g32) = run(true);
    let (y64, g64) = run(false);
    for (name, a, b) in [("gelu", &y32, &y64), ("gelu'", &g32, &g64)] {
        for (i, (p, q)) in a.iter().zip(b.iter()).enumerate() {
            let xi = x[[i]];
            let abs = if name == "gelu" { 1e-14 } else { 4e-7 };
            let ok = (p - q).abs() <= (2e-6 + 1.2e-7 * xi * xi) * q.abs() + abs;
            assert!(ok, "{name} at x = {}: {p} vs {q}", x[[i]]);
        }
    }
}

/// Max |a − b| over two f64 arrays and max(1, max |b|).
fn max_err(a: &ArrayD<f64>, b: &ArrayD<f64>) -> (f64, f64) {
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let err = a
        .iter()
        .zip(b.iter())
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    (err, scale)
}

#[test]
fn layer_norm_f32_fast_path_matches_f64_oracle() {
    // Widths 64 (the ViT) and 37 (a lane remainder), 300 rows (two parallel row chunks at w = 64).
    // Tolerance: each row's mean and variance are sums of w ≤ 64 f32 terms (relative error
    // ≤ w·ε = 7.6e-6 worst case, typically √w·ε); x̂, y and ∂x inherit it, so we allow
    // 1e-5·max(1, max |value|). The f64 oracle itself is gradient-checked above.
    for &w in &[64usize, 37] {
        let x = rand(&[300, w], -3.0, 3.0, &format!("lnx{w}"));
        let g = rand(&[w], 0.5, 1.5, &format!("lng{w}"));
        let b = rand(&[w], -0.5, 0.5, &format!("lnb{w}"));
        let seed = rand(&[300, w], -1.0, 1.0, &format!("lns{w}"));
        fn run<T: darlc::float::Float>(
            x: &ArrayD<f64>,
            g: &ArrayD<f64>,
            b: &ArrayD<f64>,
            seed: &ArrayD<f64>,
        ) -> Vec<ArrayD<f64>> {
            let mut t = Tape::<T>::new();
            let (xv, gv, bv) = (
                t.param(x.mapv(T::of)),
                t.param(g.mapv(T::of)),
                t.param(b.mapv(T::of)),
            );
            let y = t.layer_norm(xv, gv, bv, 1e-5);
            let gr = t.backward_with(y, seed.mapv(T::of));
            let f = |a: &ArrayD<T>| a.mapv(|v| v.f64());
            vec![
                f(t.value(y)),
                f(gr.get(xv).expect("∂x")),
                f(gr.get(gv).expect("∂γ")),
                f(gr.get(bv).expect("∂β")),
            ]
        }
        let r32 = run::<f32>(&x, &g, &b, &seed);
        let r64 = run::<f64>(&x, &g, &b, &seed);
        for (name, a, o) in ["y", "∂x", "∂γ", "∂β"]
            .iter()
            .zip(&r32)
            .zip(&r64)
            .map(|((n, a), o)| (n, a, o))
        {
            let (err, scale) = max_err(a, o);
            // ∂γ, ∂β are column sums over 300 rows: allow 300·ε ≈ 3.6e-5 relative there.
            let tol = if name.starts_with("∂γ") || name.starts_with("∂β") {
                4e-5
            } else {
                1e-5
            };
            assert!(
                err < tol * scale,
                "w {w} {name}: max error {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn linear_f32_fast_path_matches_f64_oracle() {
    // The direct f32 GEMM of `linear` runs for ≥ 1024 rows and output widths that are multiples
    // of 16 (∂x needs k % 16 = 0 too). 2,500 rows = 9 full 256-row chunks + 196 (whose last rows
    // are not a multiple of the 8-row tile) and 1 full 2,048-row weight-gradient chunk + 452;
    // n = 48 is a 32-column panel plus a 16-column half panel; k = 25 (the patch embedding) and
    // k = 40 keep the generic ∂x. Tolerance: y and ∂x are sums of k ≤ 64 or n ≤ 64 products
    // (≲ 64·ε·max ≈ 8e-6·max, we allow 1e-5); ∂W and ∂b sum 2,500 rows (≲ 2,500·ε ≈ 3e-4 relative
    // worst case, we allow 3e-4).
    for &(k, n) in &[(64usize, 48usize), (25, 64), (40, 16), (64, 256)] {
        let rows = 2500;
        let x = rand(&[rows, k], -1.0, 1.0, &format!("flx{k}{n}"));
        let w = rand(&[k, n], -0.5, 0.5, &format!("flw{k}{n}"));
        let b = rand(&[n], -0.5, 0.5, &format!("flb{k}{n}"));
        let seed = rand(&[rows, n], -1.0, 1.0, &format!("fls{k}{n}"));
        fn run<T: darlc::float::Float>(
            x: &ArrayD<f64>,
            w: &ArrayD<f64>,
            b: &ArrayD<f64>,
            seed: &ArrayD<f64>,
        ) -> Vec<ArrayD<f64>> {
            let mut t = Tape::<T>::new();
            let (xv, wv, bv) = (
                t.param(x.mapv(T::of)),
                t.param(w.mapv(T::of)),
                t.param(b.mapv(T::of)),
            );
            let y = t.linear(xv, wv, bv);
            let gr = t.backward_with(y, seed.mapv(T::of));
            let f = |a: &ArrayD<T>| a.mapv(|v| v.f64());
            vec![
                f(t.value(y)),
                f(gr.get(xv).expect("∂x")),
                f(gr.get(wv).expect("∂W")),
                f(gr.get(bv).expect("∂b")),
            ]
        }
        let r32 = run::<f32>(&x, &w, &b, &seed);
        let r64 = run::<f64>(&x, &w, &b, &seed);
        for ((name, a), o) in ["y", "∂x", "∂W", "∂b"].iter().zip(&r32).zip(&r64) {
            let (err, scale) = max_err(a, o);
            let tol = if name.starts_with("∂W") || name.starts_with("∂b") {
                3e-4
            } else {
                1e-5
            };
            assert!(
                err < tol * scale,
                "k {k} n {n} {name}: max error {err} (scale {scale})"
            );
        }
    }
}

#[test]
fn grad_linear_add_and_linear_gelu() {
    // The fused affine ops of the ViT block (method §4.1): `x W + b + r` (output projection or
    // second MLP layer with the residual) and `GELU(x W + b)` (first MLP layer), x [2, 3, 4].
    let x = rand(&[2, 3, 4], -1.5, 1.5, "fx");
    let w = rand(&[4, 5], -1.0, 1.0, "fw");
    let b = rand(&[5], -1.0, 1.0, "fb");
    let r = rand(&[2, 3, 5], -1.0, 1.0, "fr");
    assert_grad(
        "linear_add",
        &[x.clone(), w.clone(), b.clone(), r],
        |t, v| t.linear_add(v[0], v[1], v[2], v[3]),
    );
    assert_grad("linear_gelu", &[x, w, b], |t, v| {
        t.linear_gelu(v[0], v[1], v[2])
    });
}

/// Values and gradients of the fused ops and of the ops they replace, on a `T` tape: returns
/// `[out, ∂x, ∂W, ∂b, ∂r]` for `fused` and for the composed ops, where the output is
/// `GELU(x W + b)` (first MLP layer) followed by `h W2 + b2 + r` (second layer and residual).
#[allow(clippy::type_complexity)]
fn mlp_residual_both_ways<T: darlc::float::Float>(
    ins: &[ArrayD<f64>],
    seed: &ArrayD<f64>,
) -> [Vec<ArrayD<f64>>; 2] {
    [true, false].map(|fused| {
        let mut t = Tape::<T>::new();
        let v: Vec<Var> = ins.iter().map(|a| t.param(a.mapv(T::of))).collect();
        let (x, w1, b1, w2, b2, r) = (v[0], v[1], v[2], v[3], v[4], v[5]);
        let y = if fused {
            let h = t.linear_gelu(x, w1, b1);
            t.linear_add(h, w2, b2, r)
        } else {
            let h = t.linear(x, w1, b1);
            let h = t.gelu(h);
            let m = t.linear(h, w2, b2);
            t.add(r, m)
        };
        let gr = t.backward_with(y, seed.mapv(T::of));
        let f = |a: &ArrayD<T>| a.mapv(|v| v.f64());
        let mut out = vec![f(t.value(y))];
        out.extend(v.iter().map(|&p| f(gr.get(p).expect("gradient"))));
        out
    })
}

#[test]
fn fused_linear_ops_give_the_bits_of_the_ops_they_replace() {
    // In f64 (generic code) and in f32 with 2,500 rows (the direct GEMM with its per-chunk
    // epilogue: 9 full 256-row chunks + 196), widths 64 → 256 → 64 as in the ViT MLP, the fused
    // ops must reproduce the separate ops exactly: same IEEE operations in the same order.
    let rows = 2500;
    let ins = [
        rand(&[rows, 64], -2.0, 2.0, "bx"),
        rand(&[64, 256], -0.2, 0.2, "bw1"),
        rand(&[256], -0.5, 0.5, "bb1"),
        rand(&[256, 64], -0.1, 0.1, "bw2"),
        rand(&[64], -0.5, 0.5, "bb2"),
        rand(&[rows, 64], -1.0, 1.0, "br"),
    ];
    let seed = rand(&[rows, 64], -1.0, 1.0, "bs");
    let names = ["out", "∂x", "∂W1", "∂b1", "∂W2", "∂b2", "∂r"];
    for (prec, [fused, composed]) in [
        ("f64", mlp_residual_both_ways::<f64>(&ins, &seed)),
        ("f32", mlp_residual_both_ways::<f32>(&ins, &seed)),
    ] {
        for ((name, a), b) in names.iter().zip(&fused).zip(&composed) {
            assert_eq!(a.shape(), b.shape(), "{prec} {name}");
            let same = a
                .iter()
                .zip(b.iter())
                .all(|(u, v)| u.to_bits() == v.to_bits());
            assert!(same, "{prec} {name}: fused and composed differ");
        }
    }
}
