//! Fused f32 multi-head attention for head widths 16 and 32 (method §4.1 `MHSA` core), one image
//! per call, in the manner of FlashAttention: for a block of [`ROWS`] query rows of one head, the
//! scores `S = Q Kᵀ/√d_h`, their exponentials and the weighted sum `A V` stay in a scratch row
//! block that fits in L1, and the `[L, L]` probabilities are never stored.
//!
//! * Forward: `p_ij = exp(s_ij − m_i)` with `m_i = max_j s_ij`, `o_i = (Σ_j p_ij v_j) / Σ_j p_ij`;
//!   a recording pass keeps the row log-sum-exp `lse_i = m_i + ln Σ_j p_ij` (one number per row).
//! * Backward: recomputes `A_ij = exp(s_ij − lse_i)` from the saved `lse`, and with
//!   `D_i = Σ_c ∂o_ic o_ic` (= `Σ_j ∂A_ij A_ij`) forms `∂S = A ⊙ (∂A − D)`, `∂A = ∂O Vᵀ`, then
//!   `∂Q = ∂S K /√d_h`, `∂K = ∂Sᵀ Q /√d_h`, `∂V = Aᵀ ∂O`.
//!
//! The products are register-blocked with explicit 16-lane vectors ([`V16`]): the score block
//! holds `ROWS × 32` accumulators (16 AVX-512 registers), the `A V` block `ROWS × d_h`. With
//! AVX2 (16 registers of 8 lanes) a block is [`ROWS_AVX2`] rows and at most 12 `ymm`
//! accumulators (6 rows × 16 columns), which changes no result: each sum keeps its terms and
//! their order. Every sum runs in a fixed order (`c`, `j` and `r` ascending), so a result depends
//! only on the image, never on the thread count.

use super::v16::{V16, exp as exp_v};
use super::{LANES, Level, level};

/// Query rows per register block (AVX-512).
const ROWS: usize = 8;
/// Query rows per register block with AVX2: 6 rows × 16 columns of scores are 12 of its 16 `ymm`
/// registers.
const ROWS_AVX2: usize = 6;
/// Accumulators (16-lane vectors) of an AVX2 register block: 12 `ymm`, which leaves 4 for the
/// other operand and a broadcast.
const ACC_AVX2: usize = 6;

/// Head widths with a fused kernel (multiples of the 16 lanes).
pub fn attention_supported(dh: usize) -> bool {
    matches!(dh, 16 | 32)
}

/// Per-head working copies of one image: `Q·(1/√d_h)`, `K`, `V` as `[L, DH]` and `Kᵀ`, `Vᵀ` as
/// `[DH, Lp]` with `Lp = L` rounded up to 16 (padding columns zero).
struct Head {
    l: usize,
    lp: usize,
    dh: usize,
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
            dh,
            q: vec![0.0; l * dh],
            k: vec![0.0; l * dh],
            v: vec![0.0; l * dh],
            kt: vec![0.0; dh * lp],
            vt: vec![0.0; dh * lp],
        }
    }

    /// Copy head `h`'s columns of one image's `qkv` rows `[L, 3D]` (`Vᵀ` only if `vt`).
    #[inline(always)]
    fn load<V: V16, const NV: usize>(&mut self, x: &[f32], d: usize, h: usize, vt: bool) {
        let dh = self.dh;
        let c0 = h * dh;
        let scale = V::splat(1.0 / (dh as f32).sqrt());
        let (l, lp) = (self.l, self.lp);
        for i in 0..l {
            let row = &x[i * 3 * d..(i + 1) * 3 * d];
            for k in 0..NV {
                let c = c0 + k * LANES;
                V::load(&row[c..])
                    .mul(scale)
                    .store(&mut self.q[i * dh + k * LANES..]);
                V::load(&row[d + c..]).store(&mut self.k[i * dh + k * LANES..]);
                V::load(&row[2 * d + c..]).store(&mut self.v[i * dh + k * LANES..]);
            }
            for c in 0..dh {
                self.kt[c * lp + i] = row[d + c0 + c];
            }
            if vt {
                for c in 0..dh {
                    self.vt[c * lp + i] = row[2 * d + c0 + c];
                }
            }
        }
    }
}

/// `s[r][j] = Σ_c a[r][c] · bt[c][j]` for `R` rows of `a: [R, 16·NV]` against `bt: [16·NV, lp]`
/// into `s: [R, lp]`: 32 columns at a time (then a last 16), `c` ascending.
#[inline(always)]
fn times_t<V: V16, const NV: usize, const R: usize>(
    a: &[f32],
    bt: &[f32],
    lp: usize,
    s: &mut [f32],
) {
    let dh = NV * LANES;
    assert!(
        lp.is_multiple_of(LANES) && a.len() >= R * dh && bt.len() >= dh * lp && s.len() >= R * lp
    );
    if V::REGISTERS < 32 {
        // AVX2: blocks of at most 6 rows × 16 columns (12 `ymm` accumulators).
        if R <= ACC_AVX2 {
            times_t16::<V, R>(a, dh, bt, lp, s, 0);
        } else if R.is_multiple_of(4) {
            for r0 in (0..R).step_by(4) {
                times_t16::<V, 4>(&a[r0 * dh..], dh, bt, lp, &mut s[r0 * lp..], 0);
            }
        } else {
            for r0 in 0..R {
                times_t16::<V, 1>(&a[r0 * dh..], dh, bt, lp, &mut s[r0 * lp..], 0);
            }
        }
        return;
    }
    // SAFETY: every offset below is < R·dh into `a`, < dh·lp into `bt` and < R·lp into `s`
    // (`jb + 32 ≤ lp` in the loop), checked by the assert.
    let done = unsafe {
        let (a, bt, s) = (a.as_ptr(), bt.as_ptr(), s.as_mut_ptr());
        let mut jb = 0;
        while jb + 2 * LANES <= lp {
            let mut acc = [[V::zero(); 2]; R];
            for c in 0..dh {
                let b0 = V::load_ptr(bt.add(c * lp + jb));
                let b1 = V::load_ptr(bt.add(c * lp + jb + LANES));
                for r in 0..R {
                    let ar = V::splat(*a.add(r * dh + c));
                    acc[r][0] = acc[r][0].fma(ar, b0);
                    acc[r][1] = acc[r][1].fma(ar, b1);
                }
            }
            for r in 0..R {
                acc[r][0].store_ptr(s.add(r * lp + jb));
                acc[r][1].store_ptr(s.add(r * lp + jb + LANES));
            }
            jb += 2 * LANES;
        }
        jb
    };
    // The last 16 columns when lp is not a multiple of 32.
    times_t16::<V, R>(a, dh, bt, lp, s, done);
}

/// [`times_t`] for `R` rows and the columns from `from` (a multiple of 16) in blocks of 16 (the
/// AVX2 register block, and AVX-512's last block): the same sums in the same order.
#[inline(always)]
fn times_t16<V: V16, const R: usize>(
    a: &[f32],
    dh: usize,
    bt: &[f32],
    lp: usize,
    s: &mut [f32],
    from: usize,
) {
    assert!(a.len() >= R * dh && bt.len() >= dh * lp && s.len() >= R * lp);
    let (a, bt, s) = (a.as_ptr(), bt.as_ptr(), s.as_mut_ptr());
    // SAFETY: offsets are < R·dh into `a`, < dh·lp into `bt` and < R·lp into `s` (`jb + 16 ≤ lp`,
    // `lp` a multiple of 16), checked by the assert.
    unsafe {
        for jb in (from..lp).step_by(LANES) {
            let mut acc = [V::zero(); R];
            for c in 0..dh {
                let b = V::load_ptr(bt.add(c * lp + jb));
                for r in 0..R {
                    acc[r] = acc[r].fma(V::splat(*a.add(r * dh + c)), b);
                }
            }
            for r in 0..R {
                acc[r].store_ptr(s.add(r * lp + jb));
            }
        }
    }
}

/// `o[r] = Σ_j p[r][j] · m[j]` for `R` rows of `p: [R, lp]` (first `l` columns) and
/// `m: [l, 16·NV]` (`j` ascending).
#[inline(always)]
fn times<V: V16, const NV: usize, const R: usize>(
    p: &[f32],
    lp: usize,
    m: &[f32],
    l: usize,
) -> [[V; NV]; R] {
    if V::REGISTERS >= 32 || R * NV <= ACC_AVX2 {
        return times_block::<V, NV, R>(p, lp, m, l);
    }
    // AVX2: at most 12 `ymm` accumulators at a time (4 rows of width 16, or 2 of width 32).
    let mut acc = [[V::zero(); NV]; R];
    if NV == 1 && R.is_multiple_of(4) {
        for r0 in (0..R).step_by(4) {
            acc[r0..r0 + 4].copy_from_slice(&times_block::<V, NV, 4>(&p[r0 * lp..], lp, m, l));
        }
    } else if R.is_multiple_of(2) {
        for r0 in (0..R).step_by(2) {
            acc[r0..r0 + 2].copy_from_slice(&times_block::<V, NV, 2>(&p[r0 * lp..], lp, m, l));
        }
    } else {
        for r0 in 0..R {
            acc[r0..r0 + 1].copy_from_slice(&times_block::<V, NV, 1>(&p[r0 * lp..], lp, m, l));
        }
    }
    acc
}

/// [`times`] as one register block of `R` rows.
#[inline(always)]
fn times_block<V: V16, const NV: usize, const R: usize>(
    p: &[f32],
    lp: usize,
    m: &[f32],
    l: usize,
) -> [[V; NV]; R] {
    let dh = NV * LANES;
    assert!(l <= lp && p.len() >= R * lp && m.len() >= l * dh);
    let (p, m) = (p.as_ptr(), m.as_ptr());
    let mut acc = [[V::zero(); NV]; R];
    // SAFETY: offsets are < R·lp into `p` (j < l ≤ lp) and < l·dh into `m` (checked above).
    unsafe {
        for j in 0..l {
            let mut mv = [V::zero(); NV];
            for k in 0..NV {
                mv[k] = V::load_ptr(m.add(j * dh + k * LANES));
            }
            for r in 0..R {
                let pj = V::splat(*p.add(r * lp + j));
                for k in 0..NV {
                    acc[r][k] = acc[r][k].fma(pj, mv[k]);
                }
            }
        }
    }
    acc
}

/// `acc[j] += Σ_r w[r][j] · rows[r]` for `j < l` (`r` ascending): the rank-`R` update of `∂K`
/// and `∂V` from one block of query rows.
#[inline(always)]
fn add_outer<V: V16, const NV: usize, const R: usize>(
    w: &[f32],
    lp: usize,
    rows: &[[V; NV]; R],
    acc: &mut [f32],
    l: usize,
) {
    if V::REGISTERS >= 32 || R * NV <= ACC_AVX2 {
        return add_outer_block::<V, NV, R>(w, lp, rows, acc, l);
    }
    // AVX2: at most 12 `ymm` of `rows` at a time (4 rows of width 16, or 2 of width 32). Each element of
    // `acc` still gets its terms in ascending `r`: the first pass stores after row 3, the next
    // loads that value and goes on with row 4.
    if NV == 1 && R.is_multiple_of(4) {
        for r0 in (0..R).step_by(4) {
            let blk: [[V; NV]; 4] = rows[r0..r0 + 4].try_into().expect("4 rows");
            add_outer_block::<V, NV, 4>(&w[r0 * lp..], lp, &blk, acc, l);
        }
    } else if R.is_multiple_of(2) {
        for r0 in (0..R).step_by(2) {
            let blk: [[V; NV]; 2] = rows[r0..r0 + 2].try_into().expect("2 rows");
            add_outer_block::<V, NV, 2>(&w[r0 * lp..], lp, &blk, acc, l);
        }
    } else {
        for r0 in 0..R {
            add_outer_block::<V, NV, 1>(&w[r0 * lp..], lp, &[rows[r0]], acc, l);
        }
    }
}

/// [`add_outer`] as one register block of `R` rows.
#[inline(always)]
fn add_outer_block<V: V16, const NV: usize, const R: usize>(
    w: &[f32],
    lp: usize,
    rows: &[[V; NV]; R],
    acc: &mut [f32],
    l: usize,
) {
    let dh = NV * LANES;
    assert!(l <= lp && w.len() >= R * lp && acc.len() >= l * dh);
    let (w, acc) = (w.as_ptr(), acc.as_mut_ptr());
    // SAFETY: offsets are < R·lp into `w` and < l·dh into `acc` (checked above).
    unsafe {
        for j in 0..l {
            for k in 0..NV {
                let o = acc.add(j * dh + k * LANES);
                let mut a = V::load_ptr(o);
                for r in 0..R {
                    a = a.fma(V::splat(*w.add(r * lp + j)), rows[r][k]);
                }
                a.store_ptr(o);
            }
        }
    }
}

/// `R` rows of `src` (row stride `stride`, from column `c0`) as vectors.
#[inline(always)]
fn rows_of<V: V16, const NV: usize, const R: usize>(
    src: &[f32],
    i0: usize,
    stride: usize,
    c0: usize,
) -> [[V; NV]; R] {
    let mut rows = [[V::zero(); NV]; R];
    for r in 0..R {
        for k in 0..NV {
            rows[r][k] = V::load(&src[(i0 + r) * stride + c0 + k * LANES..]);
        }
    }
    rows
}

/// Row softmax statistics, in place on `R` rows of `s: [R, lp]` whose first `l` columns hold
/// scores: the padding columns are set to `−∞`, every entry becomes `exp(s − m)` with `m` the
/// row maximum, and `(m, Σ exp)` is returned per row. Maxima and sums are fixed-lane (lane `u`
/// takes the columns `≡ u mod 16` in ascending order, then the lanes are combined in index
/// order). A padding column contributes `e^{−87}` (the floor of [`exp_v`]) to its lane, which is
/// below the rounding of any row sum (every sum is at least 1, the term of the maximum).
#[inline(always)]
fn softmax_rows<V: V16, const R: usize>(s: &mut [f32], lp: usize, l: usize) -> [(f32, f32); R] {
    // Plain loops, not `array::from_fn`: a closure would not inherit the kernel's target features.
    let mut stats = [(0.0f32, 0.0f32); R];
    for (r, st) in stats.iter_mut().enumerate() {
        let row = &mut s[r * lp..(r + 1) * lp];
        row[l..].fill(f32::NEG_INFINITY);
        let mut mv = V::splat(f32::NEG_INFINITY);
        for ch in row.chunks_exact(LANES) {
            mv = V::load(ch).max(mv);
        }
        let m = mv
            .to_array()
            .iter()
            .fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let (ms, mut sum) = (V::splat(m), V::zero());
        for ch in row.chunks_exact_mut(LANES) {
            let e = exp_v(V::load(ch).sub(ms));
            e.store(ch);
            sum = sum.add(e);
        }
        *st = (m, sum.to_array().iter().fold(0.0, |a, &v| a + v));
    }
    stats
}

/// Forward of one block of `R` query rows from `i0` of head `h`: writes the rows' outputs (head
/// `h`'s columns of `out: [L, D]`) and, if given, their `lse` (`lse: [L]` of this head).
#[inline(always)]
fn forward_rows<V: V16, const NV: usize, const R: usize>(
    hd: &Head,
    i0: usize,
    s: &mut [f32],
    out: &mut [f32],
    d: usize,
    h: usize,
    lse: &mut Option<&mut [f32]>,
) {
    let (l, lp, dh) = (hd.l, hd.lp, hd.dh);
    times_t::<V, NV, R>(&hd.q[i0 * dh..(i0 + R) * dh], &hd.kt, lp, s);
    let stats = softmax_rows::<V, R>(s, lp, l);
    let mut inv = [0.0f32; R];
    for (r, &(m, sum)) in stats.iter().enumerate() {
        inv[r] = 1.0 / sum;
        if let Some(lse) = lse.as_deref_mut() {
            lse[i0 + r] = m + sum.ln();
        }
    }
    let o = times::<V, NV, R>(s, lp, &hd.v, l);
    for r in 0..R {
        let off = (i0 + r) * d + h * dh;
        let sc = V::splat(inv[r]);
        for k in 0..NV {
            o[r][k].mul(sc).store(&mut out[off + k * LANES..]);
        }
    }
}

#[inline(always)]
fn forward_image<V: V16, const NV: usize>(
    x: &[f32],
    l: usize,
    d: usize,
    heads: usize,
    out: &mut [f32],
    mut lse: Option<&mut [f32]>,
) {
    let mut hd = Head::new(l, NV * LANES);
    let mut s = vec![0.0f32; ROWS * hd.lp];
    for h in 0..heads {
        hd.load::<V, NV>(x, d, h, false);
        let mut lse_h = lse.as_deref_mut().map(|a| &mut a[h * l..(h + 1) * l]);
        let mut i0 = 0;
        if V::REGISTERS >= 32 {
            while i0 + ROWS <= l {
                forward_rows::<V, NV, ROWS>(&hd, i0, &mut s, out, d, h, &mut lse_h);
                i0 += ROWS;
            }
        } else {
            while i0 + ROWS_AVX2 <= l {
                forward_rows::<V, NV, ROWS_AVX2>(&hd, i0, &mut s, out, d, h, &mut lse_h);
                i0 += ROWS_AVX2;
            }
        }
        while i0 < l {
            forward_rows::<V, NV, 1>(&hd, i0, &mut s, out, d, h, &mut lse_h);
            i0 += 1;
        }
    }
}

/// Scratch of the backward pass for one head: `∂K`, `∂V` `[L, DH]` (with the `1/√d_h` of `∂K`
/// folded into the pre-scaled `Q`), the probability block `s` and the `∂A`/`∂S` block `dp`
/// (`[ROWS, lp]` each), and the block's `∂O` rows `gq` `[ROWS, DH]`.
struct Back {
    dk: Vec<f32>,
    dv: Vec<f32>,
    s: Vec<f32>,
    dp: Vec<f32>,
    gq: Vec<f32>,
}

/// Backward of one block of `R` query rows from `i0` of head `h` (see the module doc). `g`, `o`:
/// the image's `∂out` and `out` rows `[L, D]`; `lse`: this head's `[L]`; writes `∂Q` into `dx`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_rows<V: V16, const NV: usize, const R: usize>(
    hd: &Head,
    bk: &mut Back,
    i0: usize,
    g: &[f32],
    o: &[f32],
    lse: &[f32],
    d: usize,
    h: usize,
    dx: &mut [f32],
) {
    let (l, lp, dh) = (hd.l, hd.lp, hd.dh);
    let c0 = h * dh;
    // A = exp(S − lse) for the R rows (padding columns are computed but never read).
    times_t::<V, NV, R>(&hd.q[i0 * dh..(i0 + R) * dh], &hd.kt, lp, &mut bk.s);
    for r in 0..R {
        let m = V::splat(lse[i0 + r]);
        for ch in bk.s[r * lp..(r + 1) * lp].chunks_exact_mut(LANES) {
            exp_v(V::load(ch).sub(m)).store(ch);
        }
    }
    // ∂A = ∂O Vᵀ, then ∂S = A ⊙ (∂A − D) in place, D_r = Σ_c ∂o_rc o_rc.
    for r in 0..R {
        let src = &g[(i0 + r) * d + c0..(i0 + r) * d + c0 + dh];
        bk.gq[r * dh..(r + 1) * dh].copy_from_slice(src);
    }
    times_t::<V, NV, R>(&bk.gq[..R * dh], &hd.vt, lp, &mut bk.dp);
    for r in 0..R {
        let grow = &bk.gq[r * dh..(r + 1) * dh];
        let orow = &o[(i0 + r) * d + c0..(i0 + r) * d + c0 + dh];
        let dd = V::splat((0..dh).fold(0.0f32, |a, c| grow[c].mul_add(orow[c], a)));
        let (pr, dr) = (
            &bk.s[r * lp..(r + 1) * lp],
            &mut bk.dp[r * lp..(r + 1) * lp],
        );
        for (pc, dc) in pr.chunks_exact(LANES).zip(dr.chunks_exact_mut(LANES)) {
            V::load(pc).mul(V::load(dc).sub(dd)).store(dc);
        }
    }
    // ∂Q = ∂S K /√d_h.
    let scale = V::splat(1.0 / (dh as f32).sqrt());
    let dq = times::<V, NV, R>(&bk.dp, lp, &hd.k, l);
    for r in 0..R {
        let off = (i0 + r) * 3 * d + c0;
        for k in 0..NV {
            dq[r][k].mul(scale).store(&mut dx[off + k * LANES..]);
        }
    }
    // ∂K += ∂Sᵀ (Q/√d_h), ∂V += Aᵀ ∂O.
    let qrows = rows_of::<V, NV, R>(&hd.q, i0, dh, 0);
    add_outer::<V, NV, R>(&bk.dp, lp, &qrows, &mut bk.dk, l);
    let grows = rows_of::<V, NV, R>(&bk.gq, 0, dh, 0);
    add_outer::<V, NV, R>(&bk.s, lp, &grows, &mut bk.dv, l);
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn backward_image<V: V16, const NV: usize>(
    g: &[f32],
    x: &[f32],
    o: &[f32],
    lse: &[f32],
    l: usize,
    d: usize,
    heads: usize,
    dx: &mut [f32],
) {
    let dh = NV * LANES;
    let mut hd = Head::new(l, dh);
    let lp = hd.lp;
    let mut bk = Back {
        dk: vec![0.0; l * dh],
        dv: vec![0.0; l * dh],
        s: vec![0.0; ROWS * lp],
        dp: vec![0.0; ROWS * lp],
        gq: vec![0.0; ROWS * dh],
    };
    for h in 0..heads {
        hd.load::<V, NV>(x, d, h, true);
        bk.dk.fill(0.0);
        bk.dv.fill(0.0);
        let lse_h = &lse[h * l..(h + 1) * l];
        let mut i0 = 0;
        if V::REGISTERS >= 32 {
            while i0 + ROWS <= l {
                backward_rows::<V, NV, ROWS>(&hd, &mut bk, i0, g, o, lse_h, d, h, dx);
                i0 += ROWS;
            }
        } else {
            while i0 + ROWS_AVX2 <= l {
                backward_rows::<V, NV, ROWS_AVX2>(&hd, &mut bk, i0, g, o, lse_h, d, h, dx);
                i0 += ROWS_AVX2;
            }
        }
        while i0 < l {
            backward_rows::<V, NV, 1>(&hd, &mut bk, i0, g, o, lse_h, d, h, dx);
            i0 += 1;
        }
        let c0 = h * dh;
        for j in 0..l {
            let off = j * 3 * d;
            dx[off + d + c0..off + d + c0 + dh].copy_from_slice(&bk.dk[j * dh..(j + 1) * dh]);
            dx[off + 2 * d + c0..off + 2 * d + c0 + dh]
                .copy_from_slice(&bk.dv[j * dh..(j + 1) * dh]);
        }
    }
}

simd_fn! {
    vector V;
    /// Fused attention forward for one image: `x` = the image's `qkv` rows `[L, 3D]`, `out` = its
    /// `[L, D]` output, `lse` = its `[h, L]` row log-sum-exps if a backward pass will follow. Head
    /// width `D / heads` must be 16 or 32 ([`attention_supported`]).
    pub fn attention_forward(
        x: &[f32],
        l: usize,
        d: usize,
        heads: usize,
        out: &mut [f32],
        lse: Option<&mut [f32]>,
    ) -> () {
        match d / heads {
            16 => forward_image::<V, 1>(x, l, d, heads, out, lse),
            32 => forward_image::<V, 2>(x, l, d, heads, out, lse),
            dh => panic!("fused attention: unsupported head width {dh}"),
        }
    }
}

simd_fn! {
    vector V;
    /// Fused attention backward for one image: `g` = `∂out` rows `[L, D]`, `x` = `qkv` rows
    /// `[L, 3D]`, `o` = the forward's `out` rows `[L, D]`, `lse` = the forward's `[h, L]`; writes
    /// every element of `dx` = `∂qkv` `[L, 3D]`. Head width as for [`attention_forward`].
    pub fn attention_backward(
        g: &[f32],
        x: &[f32],
        o: &[f32],
        lse: &[f32],
        l: usize,
        d: usize,
        heads: usize,
        dx: &mut [f32],
    ) -> () {
        match d / heads {
            16 => backward_image::<V, 1>(g, x, o, lse, l, d, heads, dx),
            32 => backward_image::<V, 2>(g, x, o, lse, l, d, heads, dx),
            dh => panic!("fused attention: unsupported head width {dh}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::v16::Emulated;
    use super::*;

    fn draws(n: usize, name: &str) -> Vec<f32> {
        use rand::Rng;
        let mut r = crate::rng::stream(0, name);
        (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect()
    }

    /// Forward (`out`, `lse`) and backward (`∂qkv`) of one image on the vectors `V`.
    fn run<V: V16, const NV: usize>(
        x: &[f32],
        g: &[f32],
        l: usize,
        d: usize,
        heads: usize,
    ) -> [Vec<u32>; 3] {
        let mut out = vec![0.0f32; l * d];
        let mut lse = vec![0.0f32; heads * l];
        let mut dx = vec![0.0f32; l * 3 * d];
        forward_image::<V, NV>(x, l, d, heads, &mut out, Some(&mut lse));
        backward_image::<V, NV>(g, x, &out, &lse, l, d, heads, &mut dx);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
        [bits(&out), bits(&lse), bits(&dx)]
    }

    /// The AVX-512 register blocks (8 query rows, 32 score columns) and the AVX2 ones (6 rows,
    /// 16 columns, accumulators split to fit 16 `ymm`) give the same bits, run on emulated
    /// vectors on any CPU, and the compiled kernel this CPU runs gives them too. L = 37 leaves a
    /// remainder of both row blocks and of the 16 lanes; d_h 16 (4 heads) and 32 (2 heads).
    #[test]
    fn register_blocks_of_both_instruction_sets_give_the_same_bits() {
        let (l, d) = (37, 64);
        let x = draws(l * 3 * d, "attention.blocks.qkv");
        let g = draws(l * d, "attention.blocks.g");
        for heads in [4, 2] {
            let (wide, narrow) = if heads == 4 {
                (
                    run::<Emulated<32>, 1>(&x, &g, l, d, heads),
                    run::<Emulated<8>, 1>(&x, &g, l, d, heads),
                )
            } else {
                (
                    run::<Emulated<32>, 2>(&x, &g, l, d, heads),
                    run::<Emulated<8>, 2>(&x, &g, l, d, heads),
                )
            };
            let mut out = vec![0.0f32; l * d];
            let mut lse = vec![0.0f32; heads * l];
            let mut dx = vec![0.0f32; l * 3 * d];
            let compiled = attention_forward(&x, l, d, heads, &mut out, Some(&mut lse))
                .and_then(|()| attention_backward(&g, &x, &out, &lse, l, d, heads, &mut dx));
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
            for (i, name) in ["out", "lse", "dqkv"].iter().enumerate() {
                assert!(
                    wide[i] == narrow[i],
                    "{name}: 32 and 8 registers differ ({heads} heads)"
                );
            }
            if compiled.is_some() {
                let got = [bits(&out), bits(&lse), bits(&dx)];
                for (i, name) in ["out", "lse", "dqkv"].iter().enumerate() {
                    assert!(
                        got[i] == wide[i],
                        "{name}: the compiled kernel ({:?}) differs from the emulation ({heads} heads)",
                        level()
                    );
                }
            }
        }
    }
}
