//! f32-only fast kernels (the speed path of method §17; the f64 oracle never runs them).
//!
//! * [`exp`]: a branch-free `eˣ` (Cody–Waite range reduction `x = n ln2 + r`, a degree-6
//!   polynomial for `eʳ`, `2ⁿ` built from the exponent bits), written so that loops over it
//!   vectorise. Relative error below 3·10⁻⁷ on `[−87, 88]` (tested against f64 `exp`).
//! * [`gelu`] / [`gelu_grad`]: exact GELU `x Φ(x)` and `Φ(x) + x φ(x)` with `Φ` from an `erfc`
//!   whose relative error is below 1.2·10⁻⁷ in exact arithmetic (Numerical Recipes' Chebyshev
//!   fit `erfc(z) = t·exp(−z² + P(t))`, `t = 1/(1 + z/2)`), so the negative tail keeps its relative
//!   accuracy (an absolute-error `erf` would not).
//! * [`layer_norm_rows`] / [`layer_norm_backward_rows`]: LayerNorm rows with fixed-lane sums.
//! * [`attention_forward`] / [`attention_backward`]: fused multi-head attention for head widths
//!   16 or 32 in the manner of FlashAttention ([`attention`]: blocks of query rows whose scores,
//!   softmax and `A V` stay in L1, one log-sum-exp saved per row, probabilities recomputed in the
//!   backward pass), with explicit 16-lane vectors ([`v16`]).
//!
//! * [`op_linear`], [`op_norm`], [`op_gelu`], [`op_attention`]: the f32 paths of the readable
//!   ops in `ops/{linear,norm,elementwise,attention}.rs`, the glue between their generic `T`
//!   arrays and these kernels. Each readable op makes one call here and runs its generic code when
//!   the answer is `None` (f64, a shape the kernels do not take, a CPU without AVX2).
//!
//! Every reduction runs over fixed lanes in a fixed order, and each image is processed by one
//! task, so results do not depend on the thread count. The kernels are compiled twice, for
//! AVX-512 and for AVX2+FMA, and picked at run time; without either (or off x86-64) the callers
//! keep their generic code. Both compiled variants do the same IEEE operations in the same order
//! (explicit 16-lane reductions, fused multiply-adds in both), so they give the same bits: a test
//! runs both on a CPU that has both ([`with_level`]).

// Kernels index several arrays with one loop variable on purpose (fixed lanes, register blocks).
#![allow(clippy::needless_range_loop)]

/// Which compiled variant of the kernels this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512F (16 f32 lanes).
    Avx512,
    /// AVX2 + FMA (8 f32 lanes).
    Avx2,
    /// Neither: callers use their generic code.
    None,
}

thread_local! {
    static FORCED: std::cell::Cell<Option<Level>> = const { std::cell::Cell::new(None) };
}

/// Run `f` with this thread's kernels compiled for `level` instead of the best one (for tests
/// that compare the AVX2 and AVX-512 variants). Kernels called from other threads (e.g. rayon
/// workers) are not affected.
///
/// # Panics
/// If the CPU does not support `level`.
pub fn with_level<R>(level: Level, f: impl FnOnce() -> R) -> R {
    assert!(
        supports(level),
        "with_level: this CPU does not support {level:?}"
    );
    let before = FORCED.with(|c| c.replace(Some(level)));
    let r = f();
    FORCED.with(|c| c.set(before));
    r
}

/// Whether this CPU can run the kernels compiled for `level`.
pub fn supports(level: Level) -> bool {
    match level {
        Level::None => true,
        Level::Avx2 => detect_avx2(),
        Level::Avx512 => detect_avx512(),
    }
}

fn detect_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

fn detect_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The [`Level`] this thread's kernels run: the one set by [`with_level`], else the best the CPU
/// has (detection is cached by `std`).
pub fn level() -> Level {
    if let Some(l) = FORCED.with(|c| c.get()) {
        return l;
    }
    if detect_avx512() {
        Level::Avx512
    } else if detect_avx2() {
        Level::Avx2
    } else {
        Level::None
    }
}

/// Lanes of the fixed-order reductions (independent of the instruction set).
const LANES: usize = 16;

/// `eˣ` in f32 (see the module doc). Saturates to `2⁻¹²⁶·e^r`-sized values below −87.3 and to
/// `e^88.7` above 88.7; NaN propagates.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·LN2_HI is exact for |n| < 2⁸.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³ + 127: adding it rounds to an integer and leaves n + 127 in the low mantissa bits.
    const MAGIC: f32 = 12_582_912.0 + 127.0;
    let x = x.clamp(-87.0, 88.5);
    let t = x.mul_add(LOG2E, MAGIC);
    let n = t - MAGIC;
    let r = n.mul_add(-LN2_HI, x);
    let r = n.mul_add(-LN2_LO, r);
    // Cephes expf minimax polynomial for e^r on [−ln2/2, ln2/2].
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let y = (p * r).mul_add(r, r) + 1.0;
    y * f32::from_bits(t.to_bits() << 23)
}

/// `Φ(x)`, the standard normal CDF, via `erfc` (see the module doc).
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let t = 1.0 / z.mul_add(0.5, 1.0);
    let mut p = 0.170_872_77_f32;
    p = p.mul_add(t, -0.822_152_2);
    p = p.mul_add(t, 1.488_515_9);
    p = p.mul_add(t, -1.135_204);
    p = p.mul_add(t, 0.278_868_07);
    p = p.mul_add(t, -0.186_288_06);
    p = p.mul_add(t, 0.096_784_18);
    p = p.mul_add(t, 0.374_091_96);
    p = p.mul_add(t, 1.000_023_7);
    p = p.mul_add(t, -1.265_512_2);
    // ½·erfc(|x|/√2) = Φ(−|x|)
    let tail = 0.5 * t * exp(p - z * z);
    if x >= 0.0 { 1.0 - tail } else { tail }
}

/// Exact GELU `x Φ(x)` in f32.
#[inline(always)]
pub fn gelu(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// `d/dx x Φ(x) = Φ(x) + x φ(x)` in f32.
#[inline(always)]
pub fn gelu_grad(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    normal_cdf(x) + x * (INV_SQRT_2PI * exp(-0.5 * x * x))
}

/// Define `fn $name(args) -> Option<R>` that runs `$body` compiled for the detected instruction
/// set (`None` without a fast variant). The body is duplicated into one `#[target_feature]`
/// function per set, so the `#[inline(always)]` helpers it calls are compiled with those features
/// (a closure would not be: it keeps the caller's baseline features). With a leading
/// `vector V;`, the name `V` stands in the body for the [`v16::V16`] type of that set.
macro_rules! simd_fn {
    (vector $v:ident; $(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) -> $r:ty $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($a: $t),*) -> Option<$r> {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v512($($a: $t),*) -> $r {
                    type $v = $crate::autodiff::ops::fast32::v16::Avx512;
                    $body
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v256($($a: $t),*) -> $r {
                    type $v = $crate::autodiff::ops::fast32::v16::Avx2;
                    $body
                }
                // The f32 kernels run without subnormals (`crate::float::flush_subnormals`).
                match level() {
                    // SAFETY: the CPU supports the enabled features (checked by `level`).
                    Level::Avx512 => Some($crate::float::flush_subnormals(|| unsafe { v512($($a),*) })),
                    // SAFETY: as above.
                    Level::Avx2 => Some($crate::float::flush_subnormals(|| unsafe { v256($($a),*) })),
                    Level::None => None,
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = ($($a,)*);
                None
            }
        }
    };
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) -> $r:ty $body:block) => {
        $(#[$m])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($a: $t),*) -> Option<$r> {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v512($($a: $t),*) -> $r $body
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn v256($($a: $t),*) -> $r $body
                // The f32 kernels run without subnormals (`crate::float::flush_subnormals`).
                match level() {
                    // SAFETY: the CPU supports the enabled features (checked by `level`).
                    Level::Avx512 => Some($crate::float::flush_subnormals(|| unsafe { v512($($a),*) })),
                    // SAFETY: as above.
                    Level::Avx2 => Some($crate::float::flush_subnormals(|| unsafe { v256($($a),*) })),
                    Level::None => None,
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                let _ = ($($a,)*);
                None
            }
        }
    };
}

pub mod v16;

/// Fixed-lane sum of `f(j)` over `j < n`: lane `u` adds the `j ≡ u (mod 16)` terms in increasing
/// `j`, then the lanes are added in index order.
#[inline(always)]
fn lane_sum(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut a = [0.0f32; LANES];
    let full = n / LANES * LANES;
    for j0 in (0..full).step_by(LANES) {
        for u in 0..LANES {
            a[u] += f(j0 + u);
        }
    }
    for j in full..n {
        a[j - full] += f(j);
    }
    a.iter().fold(0.0, |s, &v| s + v)
}

simd_fn! {
    /// `out[i] = exp(x[i])` over a slice, vectorised ([`exp`]).
    pub fn exp_slice(x: &[f32], out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = exp(v);
        }
    }
}

simd_fn! {
    /// `out[i] = gelu(x[i])` over a slice, vectorised.
    pub fn gelu_slice(x: &[f32], out: &mut [f32]) -> () {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = gelu(v);
        }
    }
}

simd_fn! {
    /// `out[i] = g[i] · gelu'(x[i])` over slices, vectorised.
    pub fn gelu_backward_slice(g: &[f32], x: &[f32], out: &mut [f32]) -> () {
        for ((o, &gv), &xv) in out.iter_mut().zip(g).zip(x) {
            *o = gv * gelu_grad(xv);
        }
    }
}

// ------------------------------------------------------------------------------------ LayerNorm

simd_fn! {
    /// LayerNorm forward over the rows of `x: [rows, w]` (method §4.1, biased variance):
    /// `x̂ = (x − x̄)·rstd`, `rstd = 1/sqrt(var + eps)`, `y = γ ⊙ x̂ + β`; means and variances
    /// are fixed-lane sums.
    pub fn layer_norm_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        y: &mut [f32],
        means: &mut [f32],
        rstd: &mut [f32],
    ) -> () {
        let w = gamma.len();
        let inv_w = 1.0 / w as f32;
        for (r, rs) in rstd.iter_mut().enumerate() {
            let xr = &x[r * w..(r + 1) * w];
            let mean = lane_sum(w, |j| xr[j]) * inv_w;
            let var = lane_sum(w, |j| (xr[j] - mean) * (xr[j] - mean)) * inv_w;
            let s = 1.0 / (var + eps).sqrt();
            *rs = s;
            means[r] = mean;
            let yr = &mut y[r * w..(r + 1) * w];
            for j in 0..w {
                let h = (xr[j] - mean) * s;
                yr[j] = h.mul_add(gamma[j], beta[j]);
            }
        }
    }
}

simd_fn! {
    /// LayerNorm input gradient over rows: `∂x = rstd·(g⊙γ − mean(g⊙γ) − x̂·mean(g⊙γ⊙x̂))`; also
    /// adds the rows' `g ⊙ x̂` to `dgamma` and `g` to `dbeta` (rows in ascending order). `x̂` is
    /// recomputed from the input `x` and the forward's row `means` and `rstd`, with the forward's
    /// operations (same bits as the forward's `x̂`).
    pub fn layer_norm_backward_rows(
        g: &[f32],
        x: &[f32],
        gamma: &[f32],
        means: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
        dgamma: &mut [f32],
        dbeta: &mut [f32],
    ) -> () {
        let w = gamma.len();
        let inv_w = 1.0 / w as f32;
        let mut hr = vec![0.0f32; w];
        for (r, &rs) in rstd.iter().enumerate() {
            let (gr, xr, mean) = (&g[r * w..(r + 1) * w], &x[r * w..(r + 1) * w], means[r]);
            for j in 0..w {
                hr[j] = (xr[j] - mean) * rs;
            }
            let m1 = lane_sum(w, |j| gr[j] * gamma[j]) * inv_w;
            let m2 = lane_sum(w, |j| gr[j] * gamma[j] * hr[j]) * inv_w;
            let dr = &mut dx[r * w..(r + 1) * w];
            for j in 0..w {
                dr[j] = rs * (gr[j] * gamma[j] - m1 - hr[j] * m2);
                dgamma[j] += gr[j] * hr[j];
                dbeta[j] += gr[j];
            }
        }
    }
}

// ------------------------------------------------------------------------------------ attention

mod attention;
pub mod gemm;
pub use attention::{attention_backward, attention_forward, attention_supported};

// ------------------------------------------------------------------- the ops' f32 paths (glue)

pub mod op_attention;
pub mod op_gelu;
pub mod op_linear;
pub mod op_norm;

#[cfg(test)]
mod tests {
    use super::*;

    /// Uniform draws in `[lo, hi)` from a named stream.
    fn draws(n: usize, lo: f32, hi: f32, name: &str) -> Vec<f32> {
        use rand::Rng;
        let mut r = crate::rng::stream(0, name);
        (0..n).map(|_| r.random_range(lo..hi)).collect()
    }

    #[test]
    fn avx2_and_avx512_variants_give_the_same_bits() {
        // The module's claim: both compiled variants do the same IEEE operations in the same
        // order. Checked on every kernel where the CPU has both instruction sets.
        if !(supports(Level::Avx512) && supports(Level::Avx2)) {
            eprintln!("skipped: this CPU lacks AVX-512 or AVX2");
            return;
        }
        // One image of L = 37 tokens (not a multiple of the 8-row blocks or the 16 lanes),
        // D = 64 in 4 heads (d_h 16) and in 2 heads (d_h 32).
        let (l, d) = (37, 64);
        let x = draws(l * 3 * d, -2.0, 2.0, "same_bits.qkv");
        let g = draws(l * d, -1.0, 1.0, "same_bits.g");
        let run = |level: Level, heads: usize| {
            with_level(level, || {
                let mut out = vec![0.0f32; l * d];
                let mut lse = vec![0.0f32; heads * l];
                let mut dx = vec![0.0f32; l * 3 * d];
                attention_forward(&x, l, d, heads, &mut out, Some(&mut lse)).expect("kernel");
                attention_backward(&g, &x, &out, &lse, l, d, heads, &mut dx).expect("kernel");
                let mut e = vec![0.0f32; x.len()];
                exp_slice(&x.iter().map(|v| 40.0 * v).collect::<Vec<_>>(), &mut e).expect("kernel");
                let mut ge = vec![0.0f32; x.len()];
                gelu_slice(&x, &mut ge).expect("kernel");
                let mut gb = vec![0.0f32; g.len()];
                gelu_backward_slice(&g, &x[..g.len()], &mut gb).expect("kernel");
                let (gamma, beta) = (&g[..d], &g[d..2 * d]);
                let (mut y, mut mn, mut rs) = (vec![0.0; l * d], vec![0.0; l], vec![0.0; l]);
                layer_norm_rows(&x[..l * d], gamma, beta, 1e-5, &mut y, &mut mn, &mut rs)
                    .expect("kernel");
                let (mut dln, mut dg, mut db) = (vec![0.0f32; l * d], vec![0.0; d], vec![0.0; d]);
                let xl = &x[..l * d];
                layer_norm_backward_rows(&g, xl, gamma, &mn, &rs, &mut dln, &mut dg, &mut db)
                    .expect("kernel");
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
                [
                    bits(&out),
                    bits(&lse),
                    bits(&dx),
                    bits(&e),
                    bits(&ge),
                    bits(&gb),
                    bits(&y),
                    bits(&dln),
                    bits(&dg),
                    bits(&db),
                ]
            })
        };
        for heads in [4, 2] {
            let (a, b) = (run(Level::Avx512, heads), run(Level::Avx2, heads));
            let names = [
                "out", "lse", "dqkv", "exp", "gelu", "gelu'", "LN", "LN'", "dgamma", "dbeta",
            ];
            for (i, name) in names.iter().enumerate() {
                assert!(
                    a[i] == b[i],
                    "{name} differs between AVX-512 and AVX2 ({heads} heads)"
                );
            }
        }
    }

    #[test]
    fn exp_matches_f64_within_3e_7_relative() {
        // Cephes' expf polynomial has relative error ~1e-7 on the reduced range; with the FMA
        // reduction and the final rounding the bound is below 3e-7 (a few f32 ulps, 2^-23 = 1.19e-7).
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let mut got = [exp(x)];
            let _ = exp_slice(&[x], &mut got);
            let got = got[0] as f64;
            let want = (x as f64).exp();
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn gelu_matches_f64_reference() {
        // Reference: x·½·erfc(−x/√2) in f64 (libm erfc, ~1 ulp). The f32 path's erfc fit has
        // relative error < 1.2e-7; the f32 rounding of z = |x|/√2 and of the exponent −z² + P(t)
        // adds an absolute error of about 2ε·z² = 1.2e-7·x² to the exponent, i.e. that much
        // relative error in the tail (7.6e-6 at |x| = 8). Bound: 2e-6 + 1.2e-7·x² relative. The
        // derivative Φ(x) + xφ(x) cancels near its zero at x ≈ −0.75 (terms ≈ 0.23), so it gets
        // an extra absolute 3e-7 (a few f32 ulps of 0.25).
        let mut x = -9.0f32;
        while x < 9.0 {
            let xf = x as f64;
            let cdf = 0.5 * libm::erfc(-xf / std::f64::consts::SQRT_2);
            let want = xf * cdf;
            let want_d = cdf + xf * (-0.5 * xf * xf).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let mut got = [0.0f32];
            let mut got_d = [0.0f32];
            if gelu_slice(&[x], &mut got).is_none() {
                got[0] = gelu(x);
            }
            if gelu_backward_slice(&[1.0], &[x], &mut got_d).is_none() {
                got_d[0] = gelu_grad(x);
            }
            let rel = 2e-6 + 1.2e-7 * xf * xf;
            let e = (got[0] as f64 - want).abs();
            let ed = (got_d[0] as f64 - want_d).abs();
            assert!(
                e <= rel * want.abs() + 1e-38,
                "gelu({x}) = {} vs {want}",
                got[0]
            );
            assert!(
                ed <= rel * want_d.abs() + 3e-7,
                "gelu'({x}) = {} vs {want_d}",
                got_d[0]
            );
            x += 0.00731;
        }
    }
}
