//! f32-only fast kernels (the speed path of SPEC §17; the f64 oracle never runs them).
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
//!   8, 16 or 32, row by row (scores, softmax and `A V` of a block of query rows stay in L1),
//!   register-blocked over 4 query rows, instead of per-head GEMM calls whose packing costs more
//!   than the 16-deep products themselves.
//!
//! Every reduction runs over fixed lanes in a fixed order, and each image is processed by one
//! task, so results do not depend on the thread count. The kernels are compiled twice, for
//! AVX-512 and for AVX2+FMA, and picked at run time; without either (or off x86-64) the callers
//! keep their generic code. Both compiled variants are written to do the same IEEE operations in
//! the same order (explicit 16-lane reductions, `mul_add` fused in both), so they should give the
//! same bits; that is not tested (one machine only has one of them active).

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

/// The best available [`Level`] (detected once, cached by `std`).
pub fn level() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Level::Avx2;
        }
    }
    Level::None
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
/// (a closure would not be: it keeps the caller's baseline features).
macro_rules! simd_fn {
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
                match level() {
                    // SAFETY: the CPU supports the enabled features (checked by `level`).
                    Level::Avx512 => Some(unsafe { v512($($a),*) }),
                    // SAFETY: as above.
                    Level::Avx2 => Some(unsafe { v256($($a),*) }),
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
    /// LayerNorm forward over the rows of `x: [rows, w]` (SPEC §4.1, biased variance):
    /// `x̂ = (x − x̄)·rstd`, `rstd = 1/sqrt(var + eps)`, `y = γ ⊙ x̂ + β`; means and variances
    /// are fixed-lane sums.
    pub fn layer_norm_rows(
        x: &[f32],
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
        y: &mut [f32],
        xhat: &mut [f32],
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
            let (hr, yr) = (&mut xhat[r * w..(r + 1) * w], &mut y[r * w..(r + 1) * w]);
            for j in 0..w {
                let h = (xr[j] - mean) * s;
                hr[j] = h;
                yr[j] = h.mul_add(gamma[j], beta[j]);
            }
        }
    }
}

simd_fn! {
    /// LayerNorm input gradient over rows: `∂x = rstd·(g⊙γ − mean(g⊙γ) − x̂·mean(g⊙γ⊙x̂))`.
    pub fn layer_norm_backward_rows(
        g: &[f32],
        xhat: &[f32],
        gamma: &[f32],
        rstd: &[f32],
        dx: &mut [f32],
    ) -> () {
        let w = gamma.len();
        let inv_w = 1.0 / w as f32;
        for (r, &rs) in rstd.iter().enumerate() {
            let (gr, hr) = (&g[r * w..(r + 1) * w], &xhat[r * w..(r + 1) * w]);
            let m1 = lane_sum(w, |j| gr[j] * gamma[j]) * inv_w;
            let m2 = lane_sum(w, |j| gr[j] * gamma[j] * hr[j]) * inv_w;
            let dr = &mut dx[r * w..(r + 1) * w];
            for j in 0..w {
                dr[j] = rs * (gr[j] * gamma[j] - m1 - hr[j] * m2);
            }
        }
    }
}

// ------------------------------------------------------------------------------------ attention

/// Head widths with a fused kernel.
pub fn attention_supported(dh: usize) -> bool {
    matches!(dh, 8 | 16 | 32)
}

/// Query rows per register block.
const ROWS: usize = 4;

/// Per-head working copies of one image: `Q` (optionally pre-scaled) `[L, DH]`, `Kᵀ`/`Vᵀ`
/// `[DH, Lp]` with `Lp = L` rounded up to 16 (padding columns zero), `K`, `V` `[L, DH]`.
struct Head {
    l: usize,
    lp: usize,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    kt: Vec<f32>,
    vt: Vec<f32>,
}

impl Head {
    fn new(l: usize, dh: usize) -> Self {
        let lp = l.div_ceil(LANES) * LANES;
        Head {
            l,
            lp,
            q: vec![0.0; l * dh],
            k: vec![0.0; l * dh],
            v: vec![0.0; l * dh],
            kt: vec![0.0; dh * lp],
            vt: vec![0.0; dh * lp],
        }
    }

    /// Copy head `h`'s columns of one image's `qkv` rows `[L, 3D]`.
    #[inline(always)]
    fn load<const DH: usize>(&mut self, x: &[f32], d: usize, h: usize, qscale: f32, vt: bool) {
        let c0 = h * DH;
        let (l, lp) = (self.l, self.lp);
        for i in 0..l {
            let row = &x[i * 3 * d..(i + 1) * 3 * d];
            for c in 0..DH {
                let (q, k, v) = (row[c0 + c], row[d + c0 + c], row[2 * d + c0 + c]);
                self.q[i * DH + c] = q * qscale;
                self.k[i * DH + c] = k;
                self.v[i * DH + c] = v;
                self.kt[c * lp + i] = k;
                if vt {
                    self.vt[c * lp + i] = v;
                }
            }
        }
    }
}

/// `s[r][j] = Σ_c a[r][c] · bt[c][j]` for `R` rows of `a: [R, DH]` against `bt: [DH, lp]`, into
/// `s: [R, lp]` (16 columns at a time, accumulators in registers, `c` in increasing order).
#[inline(always)]
fn rows_times_t<const DH: usize, const R: usize>(a: &[f32], bt: &[f32], lp: usize, s: &mut [f32]) {
    for jb in (0..lp).step_by(LANES) {
        let mut acc = [[0.0f32; LANES]; R];
        for c in 0..DH {
            let b: &[f32; LANES] = bt[c * lp + jb..c * lp + jb + LANES]
                .try_into()
                .expect("16 lanes");
            for r in 0..R {
                let ar = a[r * DH + c];
                for u in 0..LANES {
                    acc[r][u] = ar.mul_add(b[u], acc[r][u]);
                }
            }
        }
        for r in 0..R {
            s[r * lp + jb..r * lp + jb + LANES].copy_from_slice(&acc[r]);
        }
    }
}

/// `o[r] = Σ_j p[r][j] · m[j]` for `R` rows of `p: [R, lp]` (first `l` columns) and `m: [l, DH]`
/// (`j` in increasing order), into `o: [R, DH]`.
#[inline(always)]
fn rows_times<const DH: usize, const R: usize>(
    p: &[f32],
    lp: usize,
    m: &[f32],
    l: usize,
) -> [[f32; DH]; R] {
    let mut acc = [[0.0f32; DH]; R];
    for j in 0..l {
        let mr: [f32; DH] = m[j * DH..(j + 1) * DH].try_into().expect("DH");
        for r in 0..R {
            let pj = p[r * lp + j];
            for c in 0..DH {
                acc[r][c] = pj.mul_add(mr[c], acc[r][c]);
            }
        }
    }
    acc
}

/// Fixed-lane maximum of a row.
#[inline(always)]
fn row_max(s: &[f32]) -> f32 {
    let mut m = [f32::NEG_INFINITY; LANES];
    let mut chunks = s.chunks_exact(LANES);
    for ch in &mut chunks {
        for u in 0..LANES {
            m[u] = if ch[u] > m[u] { ch[u] } else { m[u] };
        }
    }
    for (u, &v) in chunks.remainder().iter().enumerate() {
        m[u] = if v > m[u] { v } else { m[u] };
    }
    m.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Fixed-lane sum of `f(j)` over a row of length `n` (lanes combined in index order).
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

/// In-place softmax of `s[..l]`: `s ← exp(s − max) / Σ`.
#[inline(always)]
fn softmax_row(s: &mut [f32]) {
    let m = row_max(s);
    for e in s.iter_mut() {
        *e = exp(*e - m);
    }
    let sum = lane_sum(s.len(), |j| s[j]);
    let inv = 1.0 / sum;
    for e in s.iter_mut() {
        *e *= inv;
    }
}

/// One block of `R` query rows starting at `i0` of head `h` (forward).
#[inline(always)]
fn forward_rows<const DH: usize, const R: usize>(
    hd: &Head,
    i0: usize,
    s: &mut [f32],
    out: &mut [f32],
    d: usize,
    h: usize,
    probs: &mut Option<&mut [f32]>,
) {
    let (l, lp) = (hd.l, hd.lp);
    rows_times_t::<DH, R>(&hd.q[i0 * DH..(i0 + R) * DH], &hd.kt, lp, s);
    for r in 0..R {
        let row = &mut s[r * lp..r * lp + l];
        softmax_row(row);
        if let Some(p) = probs.as_deref_mut() {
            let off = (h * l + i0 + r) * l;
            p[off..off + l].copy_from_slice(row);
        }
    }
    let o = rows_times::<DH, R>(s, lp, &hd.v, l);
    for r in 0..R {
        let off = (i0 + r) * d + h * DH;
        out[off..off + DH].copy_from_slice(&o[r]);
    }
}

#[inline(always)]
fn forward_image_dh<const DH: usize>(
    x: &[f32],
    l: usize,
    d: usize,
    heads: usize,
    out: &mut [f32],
    mut probs: Option<&mut [f32]>,
) {
    let scale = 1.0 / (DH as f32).sqrt();
    let mut hd = Head::new(l, DH);
    let mut s = vec![0.0f32; ROWS * hd.lp];
    for h in 0..heads {
        hd.load::<DH>(x, d, h, scale, false);
        let mut i0 = 0;
        while i0 + ROWS <= l {
            forward_rows::<DH, ROWS>(&hd, i0, &mut s, out, d, h, &mut probs);
            i0 += ROWS;
        }
        while i0 < l {
            forward_rows::<DH, 1>(&hd, i0, &mut s, out, d, h, &mut probs);
            i0 += 1;
        }
    }
}

simd_fn! {
    /// Fused attention forward for one image (SPEC §4.1 `MHSA` core): `x` = the image's `qkv`
    /// rows `[L, 3D]`, `out` = its `[L, D]` output, `probs` = its `[h, L, L]` probabilities if
    /// kept. Head width `D / heads` must be 8, 16 or 32 ([`attention_supported`]).
    pub fn attention_forward(
        x: &[f32],
        l: usize,
        d: usize,
        heads: usize,
        out: &mut [f32],
        probs: Option<&mut [f32]>,
    ) -> () {
        match d / heads {
            8 => forward_image_dh::<8>(x, l, d, heads, out, probs),
            16 => forward_image_dh::<16>(x, l, d, heads, out, probs),
            32 => forward_image_dh::<32>(x, l, d, heads, out, probs),
            dh => panic!("fused attention: unsupported head width {dh}"),
        }
    }
}

/// Gradient accumulators of one head: `∂K`, `∂V` `[L, DH]`.
struct HeadGrads {
    dk: Vec<f32>,
    dv: Vec<f32>,
}

/// One block of `R` query rows starting at `i0` of head `h` (backward). `gq`: the rows' upstream
/// gradient `[R, DH]`; `dp`: scratch `[R, lp]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_rows<const DH: usize, const R: usize>(
    hd: &Head,
    hg: &mut HeadGrads,
    i0: usize,
    gq: &[f32],
    p: &[f32],
    dp: &mut [f32],
    dq: &mut [[f32; DH]; R],
) {
    let (l, lp) = (hd.l, hd.lp);
    // ∂A = G Vᵀ for the R rows.
    rows_times_t::<DH, R>(gq, &hd.vt, lp, dp);
    // ∂S = A ⊙ (∂A − rowsum(∂A ⊙ A)), in place in dp.
    for r in 0..R {
        let pr = &p[(i0 + r) * l..(i0 + r + 1) * l];
        let dr = &mut dp[r * lp..r * lp + l];
        let dot = lane_sum(l, |j| dr[j] * pr[j]);
        for j in 0..l {
            dr[j] = pr[j] * (dr[j] - dot);
        }
    }
    // ∂Q rows = ∂S K (the 1/√d_h is applied by the caller).
    *dq = rows_times::<DH, R>(dp, lp, &hd.k, l);
    // ∂K[j] += Σ_r ∂S[r][j] Q[r],  ∂V[j] += Σ_r A[r][j] G[r]  (r in increasing order). The R
    // rows of Q and G are copied to locals first so the updates vectorise (no possible aliasing).
    let qrows: [[f32; DH]; R] = std::array::from_fn(|r| {
        hd.q[(i0 + r) * DH..(i0 + r + 1) * DH]
            .try_into()
            .expect("DH")
    });
    let grows: [[f32; DH]; R] =
        std::array::from_fn(|r| gq[r * DH..(r + 1) * DH].try_into().expect("DH"));
    for j in 0..l {
        let dkj: &mut [f32; DH] = (&mut hg.dk[j * DH..(j + 1) * DH]).try_into().expect("DH");
        let mut acc = *dkj;
        for r in 0..R {
            let sj = dp[r * lp + j];
            for c in 0..DH {
                acc[c] = sj.mul_add(qrows[r][c], acc[c]);
            }
        }
        *dkj = acc;
        let dvj: &mut [f32; DH] = (&mut hg.dv[j * DH..(j + 1) * DH]).try_into().expect("DH");
        let mut acc = *dvj;
        for r in 0..R {
            let aj = p[(i0 + r) * l + j];
            for c in 0..DH {
                acc[c] = aj.mul_add(grows[r][c], acc[c]);
            }
        }
        *dvj = acc;
    }
}

#[inline(always)]
fn backward_image_dh<const DH: usize>(
    g: &[f32],
    x: &[f32],
    probs: &[f32],
    l: usize,
    d: usize,
    heads: usize,
    dx: &mut [f32],
) {
    let scale = 1.0 / (DH as f32).sqrt();
    let mut hd = Head::new(l, DH);
    let lp = hd.lp;
    let mut dp = vec![0.0f32; ROWS * lp];
    let mut gq = vec![0.0f32; ROWS * DH];
    let mut hg = HeadGrads {
        dk: vec![0.0; l * DH],
        dv: vec![0.0; l * DH],
    };
    for h in 0..heads {
        hd.load::<DH>(x, d, h, 1.0, true);
        hg.dk.fill(0.0);
        hg.dv.fill(0.0);
        let p = &probs[h * l * l..(h + 1) * l * l];
        let c0 = h * DH;
        let mut i0 = 0;
        while i0 < l {
            let r_here = if i0 + ROWS <= l { ROWS } else { 1 };
            for r in 0..r_here {
                gq[r * DH..(r + 1) * DH]
                    .copy_from_slice(&g[(i0 + r) * d + c0..(i0 + r) * d + c0 + DH]);
            }
            if r_here == ROWS {
                let mut dq = [[0.0f32; DH]; ROWS];
                backward_rows::<DH, ROWS>(&hd, &mut hg, i0, &gq, p, &mut dp, &mut dq);
                for (r, row) in dq.iter().enumerate() {
                    let off = (i0 + r) * 3 * d + c0;
                    for c in 0..DH {
                        dx[off + c] = row[c] * scale;
                    }
                }
            } else {
                let mut dq = [[0.0f32; DH]; 1];
                backward_rows::<DH, 1>(&hd, &mut hg, i0, &gq, p, &mut dp, &mut dq);
                let off = i0 * 3 * d + c0;
                for c in 0..DH {
                    dx[off + c] = dq[0][c] * scale;
                }
            }
            i0 += r_here;
        }
        for j in 0..l {
            let off = j * 3 * d;
            for c in 0..DH {
                dx[off + d + c0 + c] = hg.dk[j * DH + c] * scale;
                dx[off + 2 * d + c0 + c] = hg.dv[j * DH + c];
            }
        }
    }
}

simd_fn! {
    /// Fused attention backward for one image: `g` = `∂out` rows `[L, D]`, `x` = `qkv` rows
    /// `[L, 3D]`, `probs` = the saved `[h, L, L]`; writes every element of `dx` = `∂qkv`
    /// `[L, 3D]`. Head width as for [`attention_forward`].
    pub fn attention_backward(
        g: &[f32],
        x: &[f32],
        probs: &[f32],
        l: usize,
        d: usize,
        heads: usize,
        dx: &mut [f32],
    ) -> () {
        match d / heads {
            8 => backward_image_dh::<8>(g, x, probs, l, d, heads, dx),
            16 => backward_image_dh::<16>(g, x, probs, l, d, heads, dx),
            32 => backward_image_dh::<32>(g, x, probs, l, d, heads, dx),
            dh => panic!("fused attention: unsupported head width {dh}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
