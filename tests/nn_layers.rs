//! Forward values of the layers in `darlc::nn` and of the ViT block (`darlc::module1::vit`, the
//! one Module I runs) against literal re-implementations of the method's formulas (plain loops in f64,
//! written from method §4.1 and §5, not from the layer code), BatchNorm running statistics and
//! calibration, buffers in files, parameter names, and f32 against f64.

use darlc::autodiff::{Tape, Var};
use darlc::float::Float;
use darlc::module1::model::names_of;
use darlc::module1::vit::{self, ParamVars};
use darlc::nn::{BatchNorm1d, Bound, Linear, ParamId, ParamStore};
use darlc::rng;
use ndarray::{Array1, Array2, ArrayD, IxDyn, array, s};
use rand::Rng;

fn rand(shape: &[usize], lo: f64, hi: f64, name: &str) -> ArrayD<f64> {
    let mut r = rng::stream(77, name);
    ArrayD::from_shape_simple_fn(IxDyn(shape), || r.random_range(lo..hi))
}

/// Move every parameter off its init (zero biases, γ = 1) so the checks see every term.
fn perturb(store: &mut ParamStore<f64>) {
    let ids: Vec<ParamId> = store.ids().collect();
    for id in ids {
        let noise = rand(store.get(id).shape(), -0.3, 0.3, store.name(id));
        *store.get_mut(id) += &noise;
    }
}

fn max_abs_diff(a: &ArrayD<f64>, b: &ArrayD<f64>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn p2(store: &ParamStore<f64>, id: ParamId) -> Array2<f64> {
    store.get(id).clone().into_dimensionality().unwrap()
}
fn p1(store: &ParamStore<f64>, id: ParamId) -> Array1<f64> {
    store.get(id).clone().into_dimensionality().unwrap()
}
/// The matrix parameter `name`.
fn n2(store: &ParamStore<f64>, name: &str) -> Array2<f64> {
    p2(store, store.id(name).unwrap())
}
/// The vector parameter `name`.
fn n1(store: &ParamStore<f64>, name: &str) -> Array1<f64> {
    p1(store, store.id(name).unwrap())
}

// ------------------------------------------------------------------ literal method formulas

/// `Y = X W + b` row by row.
fn ref_linear(x: &Array2<f64>, w: &Array2<f64>, b: Option<&Array1<f64>>) -> Array2<f64> {
    let (n, k) = x.dim();
    let m = w.dim().1;
    Array2::from_shape_fn((n, m), |(i, j)| {
        let mut s = b.map_or(0.0, |b| b[j]);
        for q in 0..k {
            s += x[[i, q]] * w[[q, j]];
        }
        s
    })
}

/// `γ ⊙ (y − ȳ)/sqrt(var(y) + eps) + β` per row, biased variance.
fn ref_layernorm(x: &Array2<f64>, g: &Array1<f64>, b: &Array1<f64>, eps: f64) -> Array2<f64> {
    let mut y = x.clone();
    for mut row in y.rows_mut() {
        let d = row.len() as f64;
        let mean = row.sum() / d;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d;
        for (j, v) in row.iter_mut().enumerate() {
            *v = g[j] * (*v - mean) / (var + eps).sqrt() + b[j];
        }
    }
    y
}

/// method §4.1 MHSA on one sequence `[L, D]`, head by head, parameters `{a}.W_q, b_q, …`.
fn ref_mhsa(y: &Array2<f64>, s: &ParamStore<f64>, a: &str, n_heads: usize) -> Array2<f64> {
    let lin = |x: &str| {
        ref_linear(
            y,
            &n2(s, &format!("{a}.W_{x}")),
            Some(&n1(s, &format!("{a}.b_{x}"))),
        )
    };
    let (q, k, v) = (lin("q"), lin("k"), lin("v"));
    let (l, d) = y.dim();
    let dh = d / n_heads;
    let mut cat = Array2::zeros((l, d));
    for h in 0..n_heads {
        let cols = s![.., h * dh..(h + 1) * dh];
        let (qh, kh, vh) = (q.slice(cols), k.slice(cols), v.slice(cols));
        for i in 0..l {
            let logits: Vec<f64> = (0..l)
                .map(|j| qh.row(i).dot(&kh.row(j)) / (dh as f64).sqrt())
                .collect();
            let mx = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = logits.iter().map(|z| (z - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            for c in 0..dh {
                cat[[i, h * dh + c]] = (0..l).map(|j| e[j] / z * vh[[j, c]]).sum();
            }
        }
    }
    ref_linear(
        &cat,
        &n2(s, &format!("{a}.W_o")),
        Some(&n1(s, &format!("{a}.b_o"))),
    )
}

fn ref_mlp(y: &Array2<f64>, s: &ParamStore<f64>, m: &str) -> Array2<f64> {
    let h = ref_linear(
        y,
        &n2(s, &format!("{m}.W_1")),
        Some(&n1(s, &format!("{m}.b_1"))),
    );
    let h = h.mapv(|x| 0.5 * x * (1.0 + Float::erf(x / 2f64.sqrt())));
    ref_linear(
        &h,
        &n2(s, &format!("{m}.W_2")),
        Some(&n1(s, &format!("{m}.b_2"))),
    )
}

fn ref_block(x: &Array2<f64>, s: &ParamStore<f64>, b: &str, n_heads: usize) -> Array2<f64> {
    let ln = |l: &str, y: &Array2<f64>| {
        let (g, be) = (
            n1(s, &format!("{b}.{l}.gamma")),
            n1(s, &format!("{b}.{l}.beta")),
        );
        ref_layernorm(y, &g, &be, 1e-5)
    };
    let u = x + &ref_mhsa(&ln("ln1", x), s, &format!("{b}.attn"), n_heads);
    &u + &ref_mlp(&ln("ln2", &u), s, &format!("{b}.mlp"))
}

/// Run `f` on a no-grad tape with the store bound.
fn eval<T: Float>(
    store: &ParamStore<T>,
    x: ArrayD<T>,
    f: impl Fn(&mut Tape<T>, &Bound, Var) -> Var,
) -> ArrayD<T> {
    let mut t = Tape::no_grad();
    let b = store.bind(&mut t);
    let x = t.constant(x);
    let y = f(&mut t, &b, x);
    t.value(y).clone()
}

/// Run `f` on a no-grad tape with the store's leaves by name.
fn eval_named<T: Float>(
    store: &ParamStore<T>,
    x: ArrayD<T>,
    f: impl Fn(&mut Tape<T>, &ParamVars, Var) -> Var,
) -> ArrayD<T> {
    eval(store, x, |t, b, x| f(t, &names_of(store, b), x))
}

// ------------------------------------------------------------------ tests

#[test]
fn linear_layernorm_mlp_match_the_formulas() {
    let mut s = ParamStore::new();
    let mut r = rng::stream(1, "init");
    let lin = Linear::new(&mut s, "lin", 4, 5, true, &mut r);
    vit::add_layer_norm_params(&mut s, "ln", 4);
    vit::add_mlp_params(&mut s, "mlp", 4, 16, &mut r);
    // Init: zero biases, γ = 1, β = 0 (method §4.1).
    assert!(s.get(lin.b.unwrap()).iter().all(|&v| v == 0.0));
    assert!(n1(&s, "ln.gamma").iter().all(|&v| v == 1.0));
    perturb(&mut s);
    let x = rand(&[2, 3, 4], -2.0, 2.0, "x");
    let x2: Array2<f64> = x.clone().into_shape_with_order((6, 4)).unwrap();
    let y = eval(&s, x.clone(), |t, b, x| lin.forward(t, b, x));
    assert_eq!(y.shape(), &[2, 3, 5]);
    let want = ref_linear(&x2, &p2(&s, lin.w), Some(&p1(&s, lin.b.unwrap())));
    assert!(
        max_abs_diff(
            &y,
            &want
                .into_shape_with_order(vec![2, 3, 5])
                .unwrap()
                .into_dyn()
        ) < 1e-14
    );
    let y = eval_named(&s, x.clone(), |t, v, x| vit::layer_norm(t, v, "ln", x));
    let want = ref_layernorm(&x2, &n1(&s, "ln.gamma"), &n1(&s, "ln.beta"), 1e-5);
    assert!(
        max_abs_diff(
            &y,
            &want
                .into_shape_with_order(vec![2, 3, 4])
                .unwrap()
                .into_dyn()
        ) < 1e-14
    );
    let y = eval_named(&s, x, |t, v, x| vit::mlp(t, v, "mlp", x, None));
    let want = ref_mlp(&x2, &s, "mlp");
    assert!(
        max_abs_diff(
            &y,
            &want
                .into_shape_with_order(vec![2, 3, 4])
                .unwrap()
                .into_dyn()
        ) < 1e-13
    );
}

#[test]
fn mhsa_and_block_match_the_per_head_formula() {
    let mut s = ParamStore::new();
    let mut r = rng::stream(2, "init");
    vit::add_mhsa_params(&mut s, "attn", 8, &mut r);
    vit::add_block_params(&mut s, "vit.block0", 8, 4, &mut r);
    perturb(&mut s);
    let x = rand(&[3, 5, 8], -1.5, 1.5, "x");
    let attn = |t: &mut Tape<f64>, v: &ParamVars, x| vit::mhsa(t, v, "attn", x, 2, None);
    let ya = eval_named(&s, x.clone(), attn);
    let yb = eval_named(&s, x.clone(), |t, v, x| {
        vit::block(t, v, "vit.block0", x, 2)
    });
    for i in 0..3 {
        let xi: Array2<f64> = x
            .slice(s![i, .., ..])
            .to_owned()
            .into_dimensionality()
            .unwrap();
        let wa = ref_mhsa(&xi, &s, "attn", 2).into_dyn();
        let wb = ref_block(&xi, &s, "vit.block0", 2).into_dyn();
        let ga = ya.slice(s![i, .., ..]).to_owned().into_dyn();
        let gb = yb.slice(s![i, .., ..]).to_owned().into_dyn();
        assert!(max_abs_diff(&ga, &wa) < 1e-13, "mhsa item {i}");
        assert!(max_abs_diff(&gb, &wb) < 1e-13, "block item {i}");
    }
    // Items do not interact: a batch of item 0 alone gives the same rows as item 0 of the batch.
    let x0 = x.slice(s![0..1, .., ..]).to_owned().into_dyn();
    let y0 = eval_named(&s, x0, attn);
    let y0 = y0.slice(s![0, .., ..]).to_owned().into_dyn();
    assert!(max_abs_diff(&y0, &ya.slice(s![0, .., ..]).to_owned().into_dyn()) < 1e-15);
}

#[test]
fn block_parameter_names_follow_the_peer_state_dict() {
    // /work/shared/peer/README.md `state_dict_spec` names (method §18 examples).
    let mut s = ParamStore::<f32>::new();
    vit::add_block_params(&mut s, "vit.block1", 8, 4, &mut rng::stream(3, "init"));
    let names: Vec<(String, Vec<usize>)> = s
        .ids()
        .map(|id| (s.name(id).to_string(), s.get(id).shape().to_vec()))
        .collect();
    let want: Vec<(&str, Vec<usize>)> = vec![
        ("vit.block1.ln1.gamma", vec![8]),
        ("vit.block1.ln1.beta", vec![8]),
        ("vit.block1.attn.W_q", vec![8, 8]),
        ("vit.block1.attn.b_q", vec![8]),
        ("vit.block1.attn.W_k", vec![8, 8]),
        ("vit.block1.attn.b_k", vec![8]),
        ("vit.block1.attn.W_v", vec![8, 8]),
        ("vit.block1.attn.b_v", vec![8]),
        ("vit.block1.attn.W_o", vec![8, 8]),
        ("vit.block1.attn.b_o", vec![8]),
        ("vit.block1.ln2.gamma", vec![8]),
        ("vit.block1.ln2.beta", vec![8]),
        ("vit.block1.mlp.W_1", vec![8, 32]),
        ("vit.block1.mlp.b_1", vec![32]),
        ("vit.block1.mlp.W_2", vec![32, 8]),
        ("vit.block1.mlp.b_2", vec![8]),
    ];
    let got: Vec<(&str, Vec<usize>)> = names.iter().map(|(n, s)| (n.as_str(), s.clone())).collect();
    assert_eq!(got, want);
    // 4·(64 + 8) + 2·2·8 + (8·32 + 32 + 32·8 + 8) = 288 + 32 + 552 = 872 scalars.
    assert_eq!(s.num_scalars(), 872);
}

#[test]
fn batchnorm_train_step_and_running_statistics() {
    let mut s = ParamStore::<f64>::new();
    let mut bn = BatchNorm1d::new(&mut s, "proj.bn", 2);
    // Column 0: [1, 2, 3, 6] → mean 3, Σ(x−3)² = 4 + 1 + 0 + 9 = 14, biased var 3.5,
    //   unbiased 14/3. Column 1: [0, 0, 1, 1] → mean 0.5, Σ = 1, biased 0.25, unbiased 1/3.
    let x = array![[1.0, 0.0], [2.0, 0.0], [3.0, 1.0], [6.0, 1.0]].into_dyn();
    let mut t = Tape::new();
    let b = s.bind(&mut t);
    let xv = t.constant(x);
    let y = bn.forward_train(&mut t, &b, xv).unwrap();
    // rm = 0.9·0 + 0.1·mean; rv = 0.9·1 + 0.1·unbiased var (method §5).
    assert!((bn.running_mean[0] - 0.3).abs() < 1e-15);
    assert!((bn.running_mean[1] - 0.05).abs() < 1e-15);
    assert!((bn.running_var[0] - (0.9 + 0.1 * 14.0 / 3.0)).abs() < 1e-15);
    assert!((bn.running_var[1] - (0.9 + 0.1 / 3.0)).abs() < 1e-15);
    // Output normalised with the biased variance: (x − 3)/sqrt(3.5 + 1e-5), (x − 0.5)/sqrt(0.25 + 1e-5).
    let yv = t.value(y);
    assert!((yv[[3, 0]] - 3.0 / (3.5f64 + 1e-5).sqrt()).abs() < 1e-15);
    assert!((yv[[0, 1]] + 0.5 / (0.25f64 + 1e-5).sqrt()).abs() < 1e-15);
    // A batch of one row is an error naming the layer.
    let mut t = Tape::new();
    let b = s.bind(&mut t);
    let one = t.constant(array![[1.0, 2.0]].into_dyn());
    let e = bn.forward_train(&mut t, &b, one).unwrap_err().to_string();
    assert!(e.contains("proj.bn"), "{e}");
}

#[test]
fn batchnorm_eval_calibration_and_buffers_in_files() {
    let mut s = ParamStore::<f64>::new();
    let mut bn = BatchNorm1d::new(&mut s, "proj.bn", 2);
    perturb(&mut s);
    // Calibration on [N = 5, 2]: column 0 = [1, 2, 3, 4, 10] → mean 4, Σ(x−4)² = 9+4+1+0+36 = 50,
    // unbiased var 50/4 = 12.5; column 1 = [−1, −1, −1, −1, −1] → mean −1, var 0.
    let full = array![
        [1.0, -1.0],
        [2.0, -1.0],
        [3.0, -1.0],
        [4.0, -1.0],
        [10.0, -1.0]
    ];
    bn.calibrate(full.view()).unwrap();
    assert_eq!(bn.running_mean, array![4.0, -1.0]);
    assert_eq!(bn.running_var, array![12.5, 0.0]);
    assert!(bn.calibrate(full.slice(s![..1, ..])).is_err());
    // Eval mode: γ (x − rm)/sqrt(rv + eps) + β, row by row.
    let x = array![[5.0, 0.0], [-2.0, 3.0]].into_dyn();
    let y = eval(&s, x.clone(), |t, b, x| bn.forward_eval(t, b, x));
    let (g, be) = (p1(&s, bn.gamma), p1(&s, bn.beta));
    for i in 0..2 {
        for j in 0..2 {
            let want =
                g[j] * (x[[i, j]] - bn.running_mean[j]) / (bn.running_var[j] + 1e-5).sqrt() + be[j];
            assert!((y[[i, j]] - want).abs() < 1e-14);
        }
    }
    // Eval mode is row-independent: chunked evaluation gives the same bits.
    let y0 = eval(
        &s,
        x.slice(s![0..1, ..]).to_owned().into_dyn(),
        |t, b, x| bn.forward_eval(t, b, x),
    );
    assert_eq!(y0.slice(s![0, ..]), y.slice(s![0, ..]));

    // Parameters and buffers in one file, read back by name.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("darlc-nn-bn-{}", std::process::id()));
    let path = dir.join("head.safetensors");
    s.to_tensor_file_with(bn.buffers())
        .unwrap()
        .save(&path)
        .unwrap();
    let f = darlc::io::TensorFile::load(&path).unwrap();
    let names: Vec<&str> = f.tensors.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "proj.bn.beta",
            "proj.bn.gamma",
            "proj.bn.running_mean",
            "proj.bn.running_var"
        ]
    );
    let mut s2 = ParamStore::<f64>::new();
    let mut bn2 = BatchNorm1d::new(&mut s2, "proj.bn", 2);
    s2.load_into(&path).unwrap();
    bn2.load_buffers(&f, &path).unwrap();
    assert_eq!(bn2.running_mean, bn.running_mean);
    assert_eq!(bn2.running_var, bn.running_var);
    assert_eq!(s2.get(bn2.gamma), s.get(bn.gamma));
    // A buffer name that collides with a parameter is refused.
    let clash = vec![("proj.bn.gamma".to_string(), ArrayD::zeros(IxDyn(&[2])))];
    assert!(s.to_tensor_file_with(clash).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn block_f32_agrees_with_f64_within_spec_tolerances() {
    // Same weights (f64 → f32), same input; method §16: values rel 1e-4 (abs 1e-5), gradients rel 1e-3.
    let mut s64 = ParamStore::<f64>::new();
    vit::add_block_params(&mut s64, "b", 16, 4, &mut rng::stream(9, "init"));
    perturb(&mut s64);
    let mut s32 = ParamStore::<f32>::new();
    for id in s64.ids() {
        s32.add(s64.name(id), s64.get(id).mapv(|v| v as f32));
    }
    let x = rand(&[4, 9, 16], -1.0, 1.0, "x");
    fn run<T: Float>(s: &ParamStore<T>, x: ArrayD<T>) -> (ArrayD<T>, Vec<ArrayD<T>>) {
        let mut t = Tape::new();
        let p = s.bind(&mut t);
        let xv = t.constant(x);
        let y = vit::block(&mut t, &names_of(s, &p), "b", xv, 4);
        let sq = t.square(y);
        let loss = t.mean(sq);
        let g = t.backward(loss);
        (t.value(y).clone(), p.grads(&g, s))
    }
    let (y64, g64) = run(&s64, x.clone());
    let (y32, g32) = run(&s32, x.mapv(|v| v as f32));
    for (a, b) in y32.iter().zip(y64.iter()) {
        assert!((*a as f64 - b).abs() <= 1e-5 + 1e-4 * b.abs(), "{a} vs {b}");
    }
    for (id, (ga, gb)) in s64.ids().zip(g32.iter().zip(&g64)) {
        if s64.name(id) == "b.attn.b_k" {
            // ∂/∂b_k ≡ 0 (softmax is shift-invariant per query): both are rounding noise.
            assert!(gb.iter().all(|v| v.abs() < 1e-12));
            continue;
        }
        let scale = gb.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let err = ga
            .iter()
            .zip(gb.iter())
            .fold(0.0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
        assert!(
            err <= 1e-3 * scale,
            "{}: err {err} scale {scale}",
            s64.name(id)
        );
    }
}
