//! The whole Module I (SPEC §4): online/masked encoder θ, MIM decoder (m_tok, g_d), online head
//! φ_o, UWL σ₁/σ₂, and the EMA target encoder ξ with head φ_t; one training step (forward, loss,
//! backward, Adam, EMA) and the representation `h = f_o(x)`.
//!
//! Parameters live in a name → tensor map with the dotted names of the PyTorch peer's
//! `state_dict_spec` (`vit.block0.attn.W_q`, `dec.lin1.W`, `target.vit.W_pe`, …); weights are
//! stored `[d_in, d_out]` (SPEC §0).

use super::contrastive::{TAU, nt_xent};
use super::mim::{decoder, decoder_input, mim_loss, mim_weights, n_keep};
use super::uwl::{check_sigmas, uwl};
use super::vit::{self, ParamVars, embed, encode, gather_tokens, linear, mean_pool, pv};
use crate::autodiff::{Grads, Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::rng;
use ndarray::{Array2, ArrayD, ArrayView4, Axis, IxDyn};
use rand::Rng;
use std::collections::BTreeMap;

/// Architecture of Module I (defaults: SPEC §4 / §14; [`Config::tiny`]: SPEC §18).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub patch: usize,
    pub dim: usize,
    pub heads: usize,
    pub blocks: usize,
    pub mlp_ratio: usize,
    /// Decoder hidden widths `D-w1-w2-w3-w4-(C·H·W)`, shortcut `D→w3`.
    pub dec_widths: [usize; 4],
    pub d_c: usize,
    pub mask_ratio: f64,
    pub tau: f64,
    pub momentum: f64,
}

impl Config {
    /// The paper-size model for `C×H×W` images (SPEC §4.1–4.3): p 5, D 64, 4 heads, 4 blocks.
    pub fn paper(channels: usize, height: usize, width: usize) -> Config {
        Config {
            channels,
            height,
            width,
            patch: 5,
            dim: 64,
            heads: 4,
            blocks: 4,
            mlp_ratio: 4,
            dec_widths: [128, 256, 512, 1024],
            d_c: 64,
            mask_ratio: 0.8,
            tau: TAU,
            momentum: 0.999,
        }
    }
    /// The tiny configuration of SPEC §18 (10×10, p 5, D 8, 2 heads, 2 blocks, D-6-8-10-12-100,
    /// d_c 4, ρ 0.5).
    pub fn tiny() -> Config {
        Config {
            channels: 1,
            height: 10,
            width: 10,
            patch: 5,
            dim: 8,
            heads: 2,
            blocks: 2,
            mlp_ratio: 4,
            dec_widths: [6, 8, 10, 12],
            d_c: 4,
            mask_ratio: 0.5,
            tau: TAU,
            momentum: 0.999,
        }
    }
    /// Tokens per image `L`.
    pub fn tokens(&self) -> usize {
        (self.height / self.patch) * (self.width / self.patch)
    }
    /// Visible tokens per image (SPEC §4.2).
    pub fn n_keep(&self) -> usize {
        n_keep(self.tokens(), self.mask_ratio)
    }
    /// Pixels per image `C·H·W`.
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Check the sizes fit together; errors name the offending parameter.
    pub fn validate(&self) -> Result<()> {
        if self.patch == 0 || self.height % self.patch != 0 || self.width % self.patch != 0 {
            return Err(DarlcError::param(
                "patch",
                format!(
                    "image {}×{} is not a multiple of the patch size {} (pad the images, SPEC §2.2)",
                    self.height, self.width, self.patch
                ),
            ));
        }
        if self.dim % 4 != 0 || self.heads == 0 || self.dim % self.heads != 0 {
            return Err(DarlcError::param(
                "dim",
                format!(
                    "D = {} must be a multiple of 4 and of the head count {}",
                    self.dim, self.heads
                ),
            ));
        }
        if !(0.0..1.0).contains(&self.mask_ratio) || self.n_keep() == 0 {
            return Err(DarlcError::param(
                "mask_ratio",
                format!("ρ = {} leaves no visible token", self.mask_ratio),
            ));
        }
        Ok(())
    }

    /// Every trainable parameter's name and shape, in a fixed order (the init order).
    pub fn trainable_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let d = self.dim;
        let pl = self.channels * self.patch * self.patch;
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        encoder_shapes("vit", d, pl, self.blocks, self.mlp_ratio, &mut v);
        v.push(("dec.m_tok".into(), vec![d]));
        let w = self.dec_widths;
        let dims = [
            ("lin1", d, w[0]),
            ("lin2", w[0], w[1]),
            ("lin3", w[1], w[2]),
            ("short", d, w[2]),
            ("lin4", w[2], w[3]),
            ("lin5", w[3], self.pixels()),
        ];
        for (n, i, o) in dims {
            v.push((format!("dec.{n}.W"), vec![i, o]));
            v.push((format!("dec.{n}.b"), vec![o]));
        }
        for (n, o) in [("ln1", w[0]), ("ln2", w[1]), ("ln4", w[3])] {
            v.push((format!("dec.{n}.gamma"), vec![o]));
            v.push((format!("dec.{n}.beta"), vec![o]));
        }
        v.push(("g_o.W".into(), vec![d, self.d_c]));
        v.push(("g_o.b".into(), vec![self.d_c]));
        v.push(("uwl.sigma1".into(), vec![]));
        v.push(("uwl.sigma2".into(), vec![]));
        v
    }
}

fn encoder_shapes(
    p: &str,
    d: usize,
    pl: usize,
    blocks: usize,
    ratio: usize,
    v: &mut Vec<(String, Vec<usize>)>,
) {
    v.push((format!("{p}.W_pe"), vec![pl, d]));
    v.push((format!("{p}.b_pe"), vec![d]));
    for t in 0..blocks {
        let b = format!("{p}.block{t}");
        for ln in ["ln1", "ln2"] {
            v.push((format!("{b}.{ln}.gamma"), vec![d]));
            v.push((format!("{b}.{ln}.beta"), vec![d]));
        }
        for x in ["q", "k", "v", "o"] {
            v.push((format!("{b}.attn.W_{x}"), vec![d, d]));
            v.push((format!("{b}.attn.b_{x}"), vec![d]));
        }
        v.push((format!("{b}.mlp.W_1"), vec![d, ratio * d]));
        v.push((format!("{b}.mlp.b_1"), vec![ratio * d]));
        v.push((format!("{b}.mlp.W_2"), vec![ratio * d, d]));
        v.push((format!("{b}.mlp.b_2"), vec![d]));
    }
    v.push((format!("{p}.ln_f.gamma"), vec![d]));
    v.push((format!("{p}.ln_f.beta"), vec![d]));
}

/// Is `name` part of the EMA-tracked online set (θ = `vit.*`, φ_o = `g_o.*`)? Its target twin is
/// `target.vit.*` / `target.g_t.*` (SPEC §4.3).
pub fn target_name(name: &str) -> Option<String> {
    if name.starts_with("vit.") {
        Some(format!("target.{name}"))
    } else {
        name.strip_prefix("g_o.").map(|r| format!("target.g_t.{r}"))
    }
}

/// Module I's parameters: trainable (`vit.*`, `dec.*`, `g_o.*`, `uwl.*`) and EMA targets
/// (`target.vit.*`, `target.g_t.*`), plus the fixed positional table.
#[derive(Clone, Debug)]
pub struct ModuleI<T: Float> {
    pub cfg: Config,
    pub params: BTreeMap<String, ArrayD<T>>,
    pub target: BTreeMap<String, ArrayD<T>>,
    /// `PE [L, D]` (fixed, not trained; SPEC §4.1).
    pub pe: Array2<T>,
}

/// One step's scalars (f64 for logs).
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StepLosses {
    pub l_ssl: f64,
    pub l_mim: f64,
    pub l_cl: f64,
    pub sigma1: f64,
    pub sigma2: f64,
}

/// The nodes of one recorded training forward (for tests and fixtures).
pub struct StepGraph<T: Float> {
    pub tape: Tape<T>,
    pub vars: ParamVars,
    pub l_ssl: Var,
    pub l_mim: Var,
    pub l_cl: Var,
}

fn to_t<T: Float>(a: &ArrayD<f64>) -> ArrayD<T> {
    a.mapv(T::of)
}

impl<T: Float> ModuleI<T> {
    /// Fresh parameters (SPEC §4.1 init, MAE conventions): Linear weights Xavier-uniform, biases 0,
    /// LN γ = 1, β = 0, `m_tok ~ N(0, 0.02²)`, σ₁ = σ₂ = 1; the target is an exact copy.
    /// Draws come from the stream `"module1.init"` in [`Config::trainable_shapes`] order.
    pub fn new(cfg: Config, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut r = rng::stream(seed, "module1.init");
        let mut params = BTreeMap::new();
        for (name, shape) in cfg.trainable_shapes() {
            let last = name.rsplit('.').next().unwrap_or("");
            let a: ArrayD<f64> = if name == "dec.m_tok" {
                ArrayD::from_shape_simple_fn(IxDyn(&shape), || 0.02 * std_normal(&mut r))
            } else if name.starts_with("uwl.") || last == "gamma" {
                ArrayD::from_elem(IxDyn(&shape), 1.0)
            } else if shape.len() == 2 {
                let a = (6.0 / (shape[0] + shape[1]) as f64).sqrt();
                ArrayD::from_shape_simple_fn(IxDyn(&shape), || r.random_range(-a..a))
            } else {
                ArrayD::zeros(IxDyn(&shape))
            };
            params.insert(name, to_t(&a));
        }
        let target = params
            .iter()
            .filter_map(|(n, a)| target_name(n).map(|t| (t, a.clone())))
            .collect();
        let (gh, gw) = (cfg.height / cfg.patch, cfg.width / cfg.patch);
        let pe = vit::sincos_pe(cfg.dim, gh, gw).mapv(T::of);
        Ok(ModuleI {
            cfg,
            params,
            target,
            pe,
        })
    }

    /// Put every trainable parameter on `t` as a leaf (`param` or `constant`).
    pub fn leaves(&self, t: &mut Tape<T>, trainable: bool) -> ParamVars {
        self.params
            .iter()
            .map(|(n, a)| {
                let v = if trainable {
                    t.param(a.clone())
                } else {
                    t.constant(a.clone())
                };
                (n.clone(), v)
            })
            .collect()
    }

    fn pe_leaf(&self, t: &mut Tape<T>) -> Var {
        t.constant(self.pe.clone().into_dyn())
    }

    /// Record the full SSL forward of one batch (SPEC §4.5) on a fresh tape; see [`ssl_forward`].
    pub fn forward_step(
        &self,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        visible: &[Vec<usize>],
    ) -> StepGraph<T> {
        let mut t = Tape::new();
        let vars = self.leaves(&mut t, true);
        let ct = self.target_c(x_s);
        let (l_ssl, l_mim, l_cl) = ssl_forward(&mut t, &vars, &self.cfg, &self.pe, x, ct, visible);
        StepGraph {
            tape: t,
            vars,
            l_ssl,
            l_mim,
            l_cl,
        }
    }

    /// `c̃ = g_t(f_t(x_s))` with the target parameters, no gradient (Eq. 9).
    pub fn target_c(&self, x_s: ArrayView4<T>) -> ArrayD<T> {
        let mut t = Tape::no_grad();
        let vars: ParamVars = self
            .target
            .iter()
            .map(|(n, a)| (n.clone(), t.constant(a.clone())))
            .collect();
        let pe = self.pe_leaf(&mut t);
        let patches = t.constant(vit::patchify(x_s, self.cfg.patch).into_dyn());
        let t0 = embed(&mut t, &vars, "target.vit", patches, pe);
        let e = encode(
            &mut t,
            &vars,
            "target.vit",
            t0,
            self.cfg.blocks,
            self.cfg.heads,
        );
        let h = mean_pool(&mut t, e);
        let c = linear(
            &mut t,
            h,
            pv(&vars, "target.g_t.W"),
            pv(&vars, "target.g_t.b"),
        );
        t.value(c).clone()
    }

    /// `h = f_o(x)` (mean-pooled online encoder on unmasked images, SPEC §4.1), `[B, D]`,
    /// computed in chunks of `chunk` images (results do not depend on `chunk`).
    pub fn embed(&self, x: ArrayView4<T>, chunk: usize) -> Array2<T> {
        let n = x.dim().0;
        let mut out = Array2::<T>::zeros((n, self.cfg.dim));
        let chunk = chunk.max(1);
        for s in (0..n).step_by(chunk) {
            let e = (s + chunk).min(n);
            let mut t = Tape::no_grad();
            let vars = self.leaves(&mut t, false);
            let pe = self.pe_leaf(&mut t);
            let xb = x.slice(ndarray::s![s..e, .., .., ..]);
            let patches = t.constant(vit::patchify(xb, self.cfg.patch).into_dyn());
            let t0 = embed(&mut t, &vars, "vit", patches, pe);
            let ev = encode(&mut t, &vars, "vit", t0, self.cfg.blocks, self.cfg.heads);
            let h = mean_pool(&mut t, ev);
            let hv = t
                .value(h)
                .view()
                .into_dimensionality::<ndarray::Ix2>()
                .expect("[B, D]");
            out.slice_mut(ndarray::s![s..e, ..]).assign(&hv);
        }
        out
    }

    /// One warm-up step (SPEC §4.5): forward, backward, Adam on all trainable parameters, then EMA.
    /// Errors if σ² falls below 1e-12 or a loss is not finite.
    pub fn train_step(
        &mut self,
        adam: &mut Adam<T>,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        visible: &[Vec<usize>],
    ) -> Result<StepLosses> {
        let g = self.forward_step(x, x_s, visible);
        let losses = StepLosses {
            l_ssl: g.tape.scalar(g.l_ssl).f64(),
            l_mim: g.tape.scalar(g.l_mim).f64(),
            l_cl: g.tape.scalar(g.l_cl).f64(),
            sigma1: self.params["uwl.sigma1"]
                .iter()
                .next()
                .map_or(0.0, |v| v.f64()),
            sigma2: self.params["uwl.sigma2"]
                .iter()
                .next()
                .map_or(0.0, |v| v.f64()),
        };
        if !losses.l_ssl.is_finite() {
            return Err(DarlcError::Numerical(format!(
                "L_SSL is not finite (L_MIM = {}, L_CL = {})",
                losses.l_mim, losses.l_cl
            )));
        }
        let grads = g.tape.backward(g.l_ssl);
        adam.step(&mut self.params, &grads, &g.vars);
        let s1 = self.params["uwl.sigma1"]
            .iter()
            .next()
            .map_or(0.0, |v| v.f64());
        let s2 = self.params["uwl.sigma2"]
            .iter()
            .next()
            .map_or(0.0, |v| v.f64());
        check_sigmas(s1, s2)?;
        let m = self.cfg.momentum;
        self.ema(m);
        Ok(losses)
    }

    /// EMA (Eq. 8): `ξ ← mξ + (1−m)θ`, `φ_t ← mφ_t + (1−m)φ_o`.
    pub fn ema(&mut self, m: f64) {
        for (name, a) in &self.params {
            if let Some(tn) = target_name(name) {
                let tg = self.target.get_mut(&tn).expect("target twin exists");
                ema_update(tg, a, m);
            }
        }
    }
}

/// The SSL forward of one batch on `t` (SPEC §4.5): masked encoder + decoder → `L_MIM` (Eq. 7),
/// online encoder + `g_o` on `x` → `c`, NT-Xent against the constant target vectors `c_t` → `L_CL`
/// (Eq. 10), Eq. 11 → `L_SSL`. `vars` holds every trainable parameter by name; `visible` are the
/// realised visible sets. Returns `(L_SSL, L_MIM, L_CL)`.
pub fn ssl_forward<T: Float>(
    t: &mut Tape<T>,
    vars: &ParamVars,
    cfg: &Config,
    pe: &Array2<T>,
    x: ArrayView4<T>,
    c_t: ArrayD<T>,
    visible: &[Vec<usize>],
) -> (Var, Var, Var) {
    let b = x.dim().0;
    let pe_v = t.constant(pe.clone().into_dyn());
    let patches = t.constant(vit::patchify(x, cfg.patch).into_dyn());
    // T⁰ is shared by the masked and the online forward (same θ, same x).
    let t0 = embed(t, vars, "vit", patches, pe_v);
    // MIM branch.
    let tv = gather_tokens(t, t0, visible);
    let ev = encode(t, vars, "vit", tv, cfg.blocks, cfg.heads);
    let pe_sum = t.constant(pe.sum_axis(Axis(0)).into_dyn());
    let u = decoder_input(t, ev, pv(vars, "dec.m_tok"), pe_sum, cfg.tokens());
    let yhat = decoder(t, vars, u);
    let xflat = t.constant(
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(&[b, cfg.pixels()]))
            .expect("flatten"),
    );
    let w = mim_weights(visible, cfg.channels, cfg.height, cfg.width, cfg.patch);
    let l_mim = mim_loss(t, yhat, xflat, &w);
    // Contrastive branch.
    let e = encode(t, vars, "vit", t0, cfg.blocks, cfg.heads);
    let h = mean_pool(t, e);
    let c = linear(t, h, pv(vars, "g_o.W"), pv(vars, "g_o.b"));
    let ctv = t.constant(c_t);
    let l_cl = nt_xent(t, c, ctv, cfg.tau);
    let l_ssl = uwl(
        t,
        l_mim,
        l_cl,
        pv(vars, "uwl.sigma1"),
        pv(vars, "uwl.sigma2"),
    );
    (l_ssl, l_mim, l_cl)
}

/// `ξ ← m ξ + (1 − m) θ` elementwise (Eq. 8). `m = 0` copies exactly, `m = 1` freezes exactly.
pub fn ema_update<T: Float>(target: &mut ArrayD<T>, online: &ArrayD<T>, m: f64) {
    let (mt, om) = (T::of(m), T::of(1.0 - m));
    target.zip_mut_with(online, |x, &y| *x = mt * *x + om * y);
}

fn std_normal<R: Rng>(r: &mut R) -> f64 {
    // Box–Muller (one of the pair); u1 ∈ (0, 1].
    let u1: f64 = 1.0 - r.random::<f64>();
    let u2: f64 = r.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Adam with PyTorch semantics (SPEC §4.5): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `θ ← θ − lr·(m/(1−β₁ᵗ))/(sqrt(v/(1−β₂ᵗ)) + ε)`; no weight decay.
#[derive(Clone, Debug)]
pub struct Adam<T: Float> {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub t: u64,
    pub m: BTreeMap<String, ArrayD<T>>,
    pub v: BTreeMap<String, ArrayD<T>>,
}

impl<T: Float> Adam<T> {
    /// Adam with `β = (0.9, 0.999)`, `ε = 1e-8`.
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: BTreeMap::new(),
            v: BTreeMap::new(),
        }
    }

    /// One step on every parameter that has a leaf in `vars` (missing gradients count as 0).
    pub fn step(
        &mut self,
        params: &mut BTreeMap<String, ArrayD<T>>,
        grads: &Grads<T>,
        vars: &ParamVars,
    ) {
        self.t += 1;
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (ob1, ob2) = (T::of(1.0 - self.beta1), T::of(1.0 - self.beta2));
        let bc1 = T::of(1.0 - self.beta1.powi(self.t as i32));
        let bc2 = T::of(1.0 - self.beta2.powi(self.t as i32));
        let (lr, eps) = (T::of(self.lr), T::of(self.eps));
        for (name, p) in params.iter_mut() {
            let Some(var) = vars.get(name) else { continue };
            let g = grads.get_or_zeros(*var, p.shape());
            let m = self
                .m
                .entry(name.clone())
                .or_insert_with(|| ArrayD::zeros(p.raw_dim()));
            let v = self
                .v
                .entry(name.clone())
                .or_insert_with(|| ArrayD::zeros(p.raw_dim()));
            ndarray::Zip::from(&mut *p)
                .and(&mut *m)
                .and(&mut *v)
                .and(&g)
                .for_each(|p, m, v, &g| {
                    *m = b1 * *m + ob1 * g;
                    *v = b2 * *v + ob2 * g * g;
                    *p = *p - lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_m0_copies_m1_freezes() {
        let online = ArrayD::from_shape_vec(IxDyn(&[3]), vec![0.1f32, -2.0, 3.3]).unwrap();
        let mut t0 = ArrayD::from_shape_vec(IxDyn(&[3]), vec![5.0f32, 6.0, 7.0]).unwrap();
        let keep = t0.clone();
        ema_update(&mut t0, &online, 1.0);
        assert_eq!(t0, keep);
        ema_update(&mut t0, &online, 0.0);
        assert_eq!(t0, online);
    }

    #[test]
    fn init_targets_are_exact_copies_and_names_match_peer() {
        let m = ModuleI::<f64>::new(Config::tiny(), 3).unwrap();
        assert_eq!(
            m.target["target.vit.block1.attn.W_q"],
            m.params["vit.block1.attn.W_q"]
        );
        assert_eq!(m.target["target.g_t.W"], m.params["g_o.W"]);
        assert_eq!(
            m.target.len(),
            m.params.keys().filter(|n| target_name(n).is_some()).count()
        );
        // Tiny config: 4 tokens, 2 kept, decoder output 100.
        assert_eq!(m.cfg.n_keep(), 2);
        assert_eq!(m.params["dec.lin5.W"].shape(), &[12, 100]);
        assert_eq!(m.params["dec.short.W"].shape(), &[8, 10]);
    }
}
