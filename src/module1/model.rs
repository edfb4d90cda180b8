//! The whole Module I (method §4): online/masked encoder θ, MIM decoder (m_tok, g_d), online head
//! φ_o, UWL σ₁/σ₂, and the EMA target encoder ξ with head φ_t; one training step (forward, loss,
//! backward, Adam, EMA) and the representation `h = f_o(x)`.
//!
//! Parameters live in a name → tensor map with the dotted names of the PyTorch peer's
//! `state_dict_spec` (`vit.block0.attn.W_q`, `dec.lin1.W`, `target.vit.W_pe`, …); weights are
//! stored `[d_in, d_out]` (method §0).

use super::contrastive::{TAU, nt_xent};
use super::mim::{decoder, decoder_input, mim_loss, mim_weights, n_keep};
use super::uwl::{check_sigmas, uwl, uwl_mim_only};
use super::vit::{self, ParamVars, embed, encode, gather_tokens, linear, mean_pool, pv};
use crate::autodiff::{Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::nn::adam::Adam;
use crate::nn::ema::ema_update;
use crate::nn::params::{Bound, ParamId, ParamStore};
use crate::rng;
use ndarray::{Array2, ArrayD, ArrayView4, Axis, IxDyn};
use rand::Rng;

/// Architecture of Module I (defaults: method §4 / §14; [`Config::tiny`]: method §18).
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
    /// method §15 `w/o CLR`: train on `L_MIM` alone (σ₂ unused). Not serialised when false, so the
    /// golden fixtures' configuration is unchanged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_clr: bool,
}

impl Config {
    /// The paper-size model for `C×H×W` images (method §4.1–4.3): p 5, D 64, 4 heads, 4 blocks.
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
            no_clr: false,
        }
    }

    /// Module I's architecture for `C×H×W` images from a run configuration: its `module1`
    /// section and the `w/o CLR` ablation switch.
    pub fn from_run(
        c: &crate::config::Config,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Config {
        let m = &c.module1;
        Config {
            patch: m.patch,
            dim: m.dim,
            heads: m.heads,
            blocks: m.depth,
            mlp_ratio: m.mlp_ratio,
            dec_widths: m.dec_widths,
            d_c: m.contrastive_dim,
            mask_ratio: m.mask_ratio,
            tau: m.tau,
            momentum: m.ema,
            no_clr: c.ablations.no_clr,
            ..Config::paper(channels, height, width)
        }
    }
    /// The tiny configuration of method §18 (10×10, p 5, D 8, 2 heads, 2 blocks, D-6-8-10-12-100,
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
            no_clr: false,
        }
    }
    /// Tokens per image `L`.
    pub fn tokens(&self) -> usize {
        (self.height / self.patch) * (self.width / self.patch)
    }
    /// Visible tokens per image (method §4.2).
    pub fn n_keep(&self) -> usize {
        n_keep(self.tokens(), self.mask_ratio)
    }
    /// Pixels per image `C·H·W`.
    pub fn pixels(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Check the sizes fit together; errors name the offending parameter.
    pub fn validate(&self) -> Result<()> {
        if self.patch == 0
            || !self.height.is_multiple_of(self.patch)
            || !self.width.is_multiple_of(self.patch)
        {
            return Err(DarlcError::param(
                "patch",
                format!(
                    "image {}×{} is not a multiple of the patch size {} (pad the images, method §2.2)",
                    self.height, self.width, self.patch
                ),
            ));
        }
        if !self.dim.is_multiple_of(4) || self.heads == 0 || !self.dim.is_multiple_of(self.heads) {
            return Err(DarlcError::param(
                "dim",
                format!(
                    "D = {} must be a multiple of 4 and of the head count {}",
                    self.dim, self.heads
                ),
            ));
        }
        // Every linear layer needs a width of at least 1 (a zero-width layer has no output to
        // compute; the f32 affine kernel would be asked for chunks of zero rows).
        for (name, w) in [("mlp_ratio", self.mlp_ratio), ("contrastive_dim", self.d_c)] {
            if w == 0 {
                return Err(DarlcError::param(
                    name,
                    format!("must be ≥ 1 (a layer of width 0 has nothing to compute); got {w}"),
                ));
            }
        }
        if self.dec_widths.contains(&0) {
            return Err(DarlcError::param(
                "dec_widths",
                format!("every decoder width must be ≥ 1; got {:?}", self.dec_widths),
            ));
        }
        if !(0.0..1.0).contains(&self.mask_ratio) {
            return Err(DarlcError::param(
                "mask_ratio",
                format!("ρ = {} must be in [0, 1)", self.mask_ratio),
            ));
        }
        if self.n_keep() == 0 {
            // ρ < 1 keeps a token of any image with enough tokens: the patch is what is too
            // large for this image (e.g. patch 80 on a 75-pixel canvas padded to 80: 1 token).
            let l = self.tokens();
            return Err(DarlcError::param(
                "patch",
                format!(
                    "a patch of {p} cuts the {h}×{w} images into {l} token(s), and masking \
                     ρ = {r} of them leaves none visible (method §4.2); choose a smaller \
                     patch (`--patch`, `module1.patch`) or a lower mask_ratio",
                    p = self.patch,
                    h = self.height,
                    w = self.width,
                    r = self.mask_ratio
                ),
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
/// `target.vit.*` / `target.g_t.*` (method §4.3).
pub fn target_name(name: &str) -> Option<String> {
    if name.starts_with("vit.") {
        Some(format!("target.{name}"))
    } else {
        name.strip_prefix("g_o.").map(|r| format!("target.g_t.{r}"))
    }
}

/// Module I's parameters: trainable (`vit.*`, `dec.*`, `g_o.*`, `uwl.*`) in one [`ParamStore`]
/// and the EMA targets (`target.vit.*`, `target.g_t.*`) in another, plus the fixed positional table.
///
/// The joint phase (method §9) registers further trainable tensors (`proj.*`, `smm.*`) in the same
/// `store`, so one optimiser state covers every parameter; [`ModuleI::ssl_ids`] are Module I's own.
#[derive(Clone, Debug)]
pub struct ModuleI<T: Float> {
    pub cfg: Config,
    pub store: ParamStore<T>,
    pub target: ParamStore<T>,
    /// `PE [L, D]` (fixed, not trained; method §4.1).
    pub pe: Array2<T>,
    /// Module I's trainable parameters (θ, θ_dec, φ_o, σ₁, σ₂) in [`Config::trainable_shapes`] order.
    ssl_ids: Vec<ParamId>,
    /// `(online, target)` twins for the EMA (Eq. 8).
    ema_online: Vec<ParamId>,
    ema_target: Vec<ParamId>,
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
    /// Every parameter of [`ModuleI::store`] as a leaf (index = `ParamId.0`).
    pub bound: Bound,
    /// The same leaves by dotted name.
    pub vars: ParamVars,
    pub l_ssl: Var,
    pub l_mim: Var,
    pub l_cl: Var,
}

fn to_t<T: Float>(a: &ArrayD<f64>) -> ArrayD<T> {
    a.mapv(T::of)
}

impl<T: Float> ModuleI<T> {
    /// Fresh parameters (method §4.1 init, MAE conventions): Linear weights Xavier-uniform, biases 0,
    /// LN γ = 1, β = 0, `m_tok ~ N(0, 0.02²)`, σ₁ = σ₂ = 1; the target is an exact copy.
    /// Draws come from the stream `"module1.init"` in [`Config::trainable_shapes`] order.
    pub fn new(cfg: Config, seed: u64) -> Result<Self> {
        cfg.validate()?;
        let mut r = rng::stream(seed, "module1.init");
        let mut store = ParamStore::new();
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
            store.add(&name, to_t(&a));
        }
        let ssl_ids: Vec<ParamId> = store.ids().collect();
        let mut target = ParamStore::new();
        let (mut ema_online, mut ema_target) = (Vec::new(), Vec::new());
        for &id in &ssl_ids {
            if let Some(tn) = target_name(store.name(id)) {
                ema_target.push(target.add(&tn, store.get(id).clone()));
                ema_online.push(id);
            }
        }
        let (gh, gw) = (cfg.height / cfg.patch, cfg.width / cfg.patch);
        let pe = vit::sincos_pe(cfg.dim, gh, gw).mapv(T::of);
        Ok(ModuleI {
            cfg,
            store,
            target,
            pe,
            ssl_ids,
            ema_online,
            ema_target,
        })
    }

    /// Module I's own trainable parameters (θ, θ_dec, φ_o, σ₁, σ₂), the set the warm-up trains.
    pub fn ssl_ids(&self) -> &[ParamId] {
        &self.ssl_ids
    }

    /// The value of the trainable parameter `name` (online store).
    ///
    /// # Panics
    /// If no parameter has this name (names are fixed by the code, method §18).
    pub fn param(&self, name: &str) -> &ArrayD<T> {
        let id = self
            .store
            .id(name)
            .unwrap_or_else(|| panic!("Module I has no parameter `{name}`"));
        self.store.get(id)
    }

    /// The current σ₁, σ₂ of Eq. 11.
    pub fn sigmas(&self) -> (f64, f64) {
        let s = |n: &str| self.param(n).iter().next().map_or(f64::NAN, |v| v.f64());
        (s("uwl.sigma1"), s("uwl.sigma2"))
    }

    /// Put every parameter of the store on `t` as a leaf (`param` or `constant`); returns the
    /// leaves by id and by dotted name.
    pub fn leaves(&self, t: &mut Tape<T>, trainable: bool) -> (Bound, ParamVars) {
        let bound = if trainable {
            self.store.bind(t)
        } else {
            self.store.bind_frozen(t)
        };
        let vars = names_of(&self.store, &bound);
        (bound, vars)
    }

    fn pe_leaf(&self, t: &mut Tape<T>) -> Var {
        t.constant(self.pe.clone().into_dyn())
    }

    /// Record the full SSL forward of one batch (method §4.5) on a fresh tape; see [`ssl_forward`].
    pub fn forward_step(
        &self,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        visible: &[Vec<usize>],
    ) -> StepGraph<T> {
        let mut t = Tape::new();
        let (bound, vars) = self.leaves(&mut t, true);
        let ct = self.target_c(x_s);
        let (l_ssl, l_mim, l_cl) = ssl_forward(&mut t, &vars, &self.cfg, &self.pe, x, ct, visible);
        StepGraph {
            tape: t,
            bound,
            vars,
            l_ssl,
            l_mim,
            l_cl,
        }
    }

    /// `c̃ = g_t(f_t(x_s))` with the target parameters, no gradient (Eq. 9).
    pub fn target_c(&self, x_s: ArrayView4<T>) -> ArrayD<T> {
        let mut t = Tape::no_grad();
        let bound = self.target.bind_frozen(&mut t);
        let vars = names_of(&self.target, &bound);
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

    /// `h = f_o(x)` (mean-pooled online encoder on unmasked images, method §4.1), `[B, D]`,
    /// computed in chunks of `chunk` images (results do not depend on `chunk`).
    pub fn embed(&self, x: ArrayView4<T>, chunk: usize) -> Array2<T> {
        let n = x.dim().0;
        let mut out = Array2::<T>::zeros((n, self.cfg.dim));
        let chunk = chunk.max(1);
        for s in (0..n).step_by(chunk) {
            let e = (s + chunk).min(n);
            let mut t = Tape::no_grad();
            let (_, vars) = self.leaves(&mut t, false);
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

    /// One warm-up step (method §4.5): forward, backward, Adam on Module I's parameters
    /// ([`Self::ssl_ids`]), then EMA. Errors if σ² falls below 1e-12 or a loss is not finite.
    pub fn train_step(
        &mut self,
        adam: &mut Adam<T>,
        x: ArrayView4<T>,
        x_s: ArrayView4<T>,
        visible: &[Vec<usize>],
    ) -> Result<StepLosses> {
        let g = self.forward_step(x, x_s, visible);
        let (sigma1, sigma2) = self.sigmas();
        let losses = StepLosses {
            l_ssl: g.tape.scalar(g.l_ssl).f64(),
            l_mim: g.tape.scalar(g.l_mim).f64(),
            l_cl: g.tape.scalar(g.l_cl).f64(),
            sigma1,
            sigma2,
        };
        if !losses.l_ssl.is_finite() {
            return Err(DarlcError::Numerical(format!(
                "L_SSL is not finite (L_MIM = {}, L_CL = {})",
                losses.l_mim, losses.l_cl
            )));
        }
        let mut grads = g.tape.backward(g.l_ssl);
        let ids = self.ssl_ids.clone();
        let gs = g.bound.take_grads(&mut grads, &self.store, &ids);
        adam.step(&mut self.store, &ids, &gs);
        let (s1, s2) = self.sigmas();
        check_sigmas(s1, s2)?;
        let m = self.cfg.momentum;
        self.ema(m);
        Ok(losses)
    }

    /// EMA (Eq. 8): `ξ ← mξ + (1−m)θ`, `φ_t ← mφ_t + (1−m)φ_o`.
    pub fn ema(&mut self, m: f64) {
        ema_update(
            &mut self.target,
            &self.ema_target,
            &self.store,
            &self.ema_online,
            m,
        );
    }

    /// Every online parameter and EMA target by dotted name (for `model.safetensors`).
    pub fn named_tensors(&self) -> Vec<(String, ArrayD<T>)> {
        let mut v: Vec<(String, ArrayD<T>)> = Vec::new();
        for s in [&self.store, &self.target] {
            for id in s.ids() {
                v.push((s.name(id).to_string(), s.get(id).clone()));
            }
        }
        v
    }
}

/// The leaves of `bound` by the dotted names of `store`.
pub fn names_of<T: Float>(store: &ParamStore<T>, bound: &Bound) -> ParamVars {
    store
        .ids()
        .map(|id| (store.name(id).to_string(), bound.var(id)))
        .collect()
}

/// The SSL forward of one batch on `t` (method §4.5): masked encoder + decoder → `L_MIM` (Eq. 7),
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
    let o = ssl_forward_h(t, vars, cfg, pe, x, c_t, visible);
    (o.l_ssl, o.l_mim, o.l_cl)
}

/// The nodes of one SSL forward, including the online representation `h` that the batch-level
/// clustering loss of the joint phase reuses (method §9.2).
#[derive(Clone, Copy, Debug)]
pub struct SslNodes {
    pub l_ssl: Var,
    pub l_mim: Var,
    pub l_cl: Var,
    /// `h = f_o(x)` `[B, D]` (unmasked, mean-pooled).
    pub h: Var,
}

/// [`ssl_forward`], also returning `h`. With [`Config::no_clr`] (method §15 `w/o CLR`) `L_CL` is
/// still computed for the log but `L_SSL = L_MIM/(2σ₁²) + ln(1+σ₁²)`.
pub fn ssl_forward_h<T: Float>(
    t: &mut Tape<T>,
    vars: &ParamVars,
    cfg: &Config,
    pe: &Array2<T>,
    x: ArrayView4<T>,
    c_t: ArrayD<T>,
    visible: &[Vec<usize>],
) -> SslNodes {
    let (l_mim, h) = mim_and_h(t, vars, cfg, pe, x, visible);
    // Contrastive branch.
    let c = linear(t, h, pv(vars, "g_o.W"), pv(vars, "g_o.b"));
    let ctv = t.constant(c_t);
    let l_cl = nt_xent(t, c, ctv, cfg.tau);
    let l_ssl = if cfg.no_clr {
        uwl_mim_only(t, l_mim, pv(vars, "uwl.sigma1"))
    } else {
        uwl(
            t,
            l_mim,
            l_cl,
            pv(vars, "uwl.sigma1"),
            pv(vars, "uwl.sigma2"),
        )
    };
    SslNodes {
        l_ssl,
        l_mim,
        l_cl,
        h,
    }
}

/// The two encoder passes of one batch that share `T⁰` (method §4.1–4.2): the masked encoder +
/// decoder → `L_MIM` (Eq. 7) and the unmasked online encoder → `h` `[B, D]`. Used by the warm-up
/// step and by the epoch-level loss of the joint phase (method §8.5–8.6).
pub fn mim_and_h<T: Float>(
    t: &mut Tape<T>,
    vars: &ParamVars,
    cfg: &Config,
    pe: &Array2<T>,
    x: ArrayView4<T>,
    visible: &[Vec<usize>],
) -> (Var, Var) {
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
    // Online encoder on all tokens.
    let e = encode(t, vars, "vit", t0, cfg.blocks, cfg.heads);
    let h = mean_pool(t, e);
    (l_mim, h)
}

fn std_normal<R: Rng>(r: &mut R) -> f64 {
    // Box–Muller (one of the pair); u1 ∈ (0, 1].
    let u1: f64 = 1.0 - r.random::<f64>();
    let u2: f64 = r.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_width_layers_are_refused_before_any_step() {
        // Issue 24: `mlp_ratio 0` or `contrastive_dim 0` used to panic in the f32 affine kernel at
        // the first warm-up step; the model refuses them whoever builds it.
        for (key, set) in [
            (
                "mlp_ratio",
                (|c: &mut Config| c.mlp_ratio = 0) as fn(&mut Config),
            ),
            ("contrastive_dim", |c| c.d_c = 0),
            ("dec_widths", |c| c.dec_widths[2] = 0),
        ] {
            let mut c = Config::tiny();
            set(&mut c);
            let e = ModuleI::<f32>::new(c, 0).expect_err(key).to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }

    #[test]
    fn init_targets_are_exact_copies_and_names_match_peer() {
        let m = ModuleI::<f64>::new(Config::tiny(), 3).unwrap();
        let tgt = |n: &str| m.target.get(m.target.id(n).unwrap());
        assert_eq!(
            tgt("target.vit.block1.attn.W_q"),
            m.param("vit.block1.attn.W_q")
        );
        assert_eq!(tgt("target.g_t.W"), m.param("g_o.W"));
        assert_eq!(
            m.target.len(),
            m.store
                .ids()
                .filter(|&i| target_name(m.store.name(i)).is_some())
                .count()
        );
        assert_eq!(m.ssl_ids().len(), m.store.len());
        // Tiny config: 4 tokens, 2 kept, decoder output 100.
        assert_eq!(m.cfg.n_keep(), 2);
        assert_eq!(m.param("dec.lin5.W").shape(), &[12, 100]);
        assert_eq!(m.param("dec.short.W").shape(), &[8, 10]);
    }
}
