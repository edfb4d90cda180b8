//! Direct f32 products for the affine layer `Y = X W + b` and its gradients (the `linear` op of
//! the tape), at the shapes of the ViT: many rows (`B·L`), short reductions (`k` = 25…256) and
//! narrow outputs (`n` = 64…256).
//!
//! The weight operand is packed once per call into column panels ([`Panels`]); the activations
//! are read in place, row by row, so the large operand is never copied. A register tile holds
//! [`MR`] rows × 32 columns (16 AVX-512 registers) over the whole reduction, `k` ascending; the
//! bias is added to the finished sum. The weight gradient `Xᵀ G` has its own tile (12 reduction
//! rows of `W` × 32 columns) that runs down the rows of `X` and `G` in ascending order.
//!
//! With AVX2 (16 registers of 8 lanes) both tiles are 6 rows × 16 columns ([`MR_AVX2`]): 12
//! accumulators, 2 registers of the other operand and 1 broadcast. The AVX-512 shapes would need
//! 32 and 48 `ymm` accumulators and spill on every step. Each output element gets the same
//! operations in the same order in either shape, so both give the same bits.
//!
//! The callers cut rows into fixed chunks (independent of the thread count), so every output
//! element is computed by exactly one tile in one order.

use super::v16::V16;
use super::{LANES, Level, level};

/// Columns of a packed panel.
pub const NR: usize = 2 * LANES;
/// Rows of a register tile (AVX-512).
pub const MR: usize = 8;
/// Rows of a register tile with AVX2, whose tiles are 16 columns wide.
pub const MR_AVX2: usize = 6;

/// A `[k, n]` matrix (`n` a multiple of 16) in column panels: panel `p` holds columns
/// `32p .. 32p + w` (`w` = 32, or 16 for a last half panel) as `k` rows of `w` contiguous floats.
#[derive(Clone, Debug)]
pub struct Panels {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl Panels {
    /// Pack `b(kk, j) = src[kk·rs + j·cs]` for `kk < k`, `j < n`.
    ///
    /// # Panics
    /// If `n` is not a multiple of 16 or `src` is too short.
    pub fn pack(src: &[f32], k: usize, n: usize, rs: usize, cs: usize) -> Panels {
        assert!(
            n.is_multiple_of(LANES),
            "Panels: n = {n} is not a multiple of 16"
        );
        if k > 0 && n > 0 {
            assert!(
                src.len() > (k - 1) * rs + (n - 1) * cs,
                "Panels: source too short"
            );
        }
        let mut data = vec![0.0f32; k * n];
        let mut off = 0;
        for j0 in (0..n).step_by(NR) {
            let w = NR.min(n - j0);
            for kk in 0..k {
                let row = &mut data[off + kk * w..off + (kk + 1) * w];
                for (jj, v) in row.iter_mut().enumerate() {
                    *v = src[kk * rs + (j0 + jj) * cs];
                }
            }
            off += k * w;
        }
        Panels { k, n, data }
    }

    /// Reduction length `k`.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns `n`.
    pub fn n(&self) -> usize {
        self.n
    }
}

/// One `R × 32` (or `R × 16` when `HALF`) tile: `c[r][j] = Σ_kk a[r][kk] · b[kk][j] (+ bias[j])`,
/// with `b`'s rows `ldb` floats apart (the width of its panel).
///
/// # Safety
/// `a` valid for `R` rows of `k` floats at stride `lda`; `b` for `k` rows of `W` floats at stride
/// `ldb`; `bias` (if not null) for `W` floats; `c` for `R` rows of `W` floats at stride `ldc`
/// (`W` = 16 or 32).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<V: V16, const R: usize, const HALF: bool>(
    a: *const f32,
    lda: usize,
    k: usize,
    b: *const f32,
    ldb: usize,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    unsafe {
        let mut acc = [[V::zero(); 2]; R];
        for kk in 0..k {
            let b0 = V::load_ptr(b.add(kk * ldb));
            let b1 = if HALF {
                b0
            } else {
                V::load_ptr(b.add(kk * ldb + LANES))
            };
            for r in 0..R {
                let ar = V::splat(*a.add(r * lda + kk));
                acc[r][0] = acc[r][0].fma(ar, b0);
                if !HALF {
                    acc[r][1] = acc[r][1].fma(ar, b1);
                }
            }
        }
        if !bias.is_null() {
            let b0 = V::load_ptr(bias);
            let b1 = if HALF {
                b0
            } else {
                V::load_ptr(bias.add(LANES))
            };
            for r in 0..R {
                acc[r][0] = acc[r][0].add(b0);
                acc[r][1] = acc[r][1].add(b1);
            }
        }
        for r in 0..R {
            acc[r][0].store_ptr(c.add(r * ldc));
            if !HALF {
                acc[r][1].store_ptr(c.add(r * ldc + LANES));
            }
        }
    }
}

/// `R` rows against every panel.
///
/// # Safety
/// As for [`tile`], for `R` rows and all of `b`'s columns.
#[inline(always)]
unsafe fn rows<V: V16, const R: usize>(
    a: *const f32,
    lda: usize,
    b: &Panels,
    bias: *const f32,
    c: *mut f32,
    ldc: usize,
) {
    let k = b.k;
    let mut off = 0;
    for j0 in (0..b.n).step_by(NR) {
        let bp = unsafe { b.data.as_ptr().add(off) };
        let bi = if bias.is_null() {
            bias
        } else {
            unsafe { bias.add(j0) }
        };
        // SAFETY: panel `j0` starts at `off` and holds k·w floats; columns j0..j0+w of c and bias.
        unsafe {
            if b.n - j0 < NR {
                tile::<V, R, true>(a, lda, k, bp, LANES, bi, c.add(j0), ldc);
                off += k * LANES;
                continue;
            }
            if V::REGISTERS >= 32 {
                tile::<V, R, false>(a, lda, k, bp, NR, bi, c.add(j0), ldc);
            } else {
                // Two 16-column tiles over the two halves of the panel.
                let bi1 = if bi.is_null() { bi } else { bi.add(LANES) };
                tile::<V, R, true>(a, lda, k, bp, NR, bi, c.add(j0), ldc);
                tile::<V, R, true>(a, lda, k, bp.add(LANES), NR, bi1, c.add(j0 + LANES), ldc);
            }
            off += k * NR;
        }
    }
}

simd_fn! {
    vector V;
    /// `c[i][j] = Σ_kk a[i][kk] · b[kk][j] + bias[j]` for `m` rows (`a` at row stride `lda`,
    /// `c` at row stride `ldc`), `kk` ascending, bias (if any) added to the finished sum.
    pub fn gemm_rows(
        a: &[f32],
        lda: usize,
        m: usize,
        b: &Panels,
        bias: Option<&[f32]>,
        c: &mut [f32],
        ldc: usize,
    ) -> () {
        gemm_rows_with::<V>(a, lda, m, b, bias, c, ldc)
    }
}

/// [`gemm_rows`] on the vectors `V`.
#[inline(always)]
fn gemm_rows_with<V: V16>(
    a: &[f32],
    lda: usize,
    m: usize,
    b: &Panels,
    bias: Option<&[f32]>,
    c: &mut [f32],
    ldc: usize,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + b.k, "gemm_rows: a too short");
    assert!(c.len() >= (m - 1) * ldc + b.n, "gemm_rows: c too short");
    assert!(
        bias.is_none_or(|v| v.len() >= b.n),
        "gemm_rows: bias too short"
    );
    let bias = bias.map_or(std::ptr::null(), |v| v.as_ptr());
    let (a, c) = (a.as_ptr(), c.as_mut_ptr());
    let mut i = 0;
    // SAFETY: rows i..i+R < m of a and c, checked by the asserts above.
    unsafe {
        if V::REGISTERS >= 32 {
            while i + MR <= m {
                rows::<V, MR>(a.add(i * lda), lda, b, bias, c.add(i * ldc), ldc);
                i += MR;
            }
        } else {
            while i + MR_AVX2 <= m {
                rows::<V, MR_AVX2>(a.add(i * lda), lda, b, bias, c.add(i * ldc), ldc);
                i += MR_AVX2;
            }
        }
        if i + 4 <= m {
            rows::<V, 4>(a.add(i * lda), lda, b, bias, c.add(i * ldc), ldc);
            i += 4;
        }
        if i + 2 <= m {
            rows::<V, 2>(a.add(i * lda), lda, b, bias, c.add(i * ldc), ldc);
            i += 2;
        }
        if i < m {
            rows::<V, 1>(a.add(i * lda), lda, b, bias, c.add(i * ldc), ldc);
        }
    }
}

/// One `R × 32` (or `× 16`) tile of `out += Σ_i a[i][k0..k0+R]ᵀ g[i][j0..j0+w]` over `m` rows.
///
/// # Safety
/// `a` valid for `m` rows at stride `lda` from column `k0` (R floats), `g` for `m` rows at stride
/// `ldg` (w floats from `j0`), `out` for `R` rows of `w` floats at stride `ldo`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_tn<V: V16, const R: usize, const HALF: bool>(
    a: *const f32,
    lda: usize,
    g: *const f32,
    ldg: usize,
    m: usize,
    out: *mut f32,
    ldo: usize,
) {
    unsafe {
        let mut acc = [[V::zero(); 2]; R];
        for r in 0..R {
            acc[r][0] = V::load_ptr(out.add(r * ldo));
            if !HALF {
                acc[r][1] = V::load_ptr(out.add(r * ldo + LANES));
            }
        }
        for i in 0..m {
            let g0 = V::load_ptr(g.add(i * ldg));
            let g1 = if HALF {
                g0
            } else {
                V::load_ptr(g.add(i * ldg + LANES))
            };
            for r in 0..R {
                let ar = V::splat(*a.add(i * lda + r));
                acc[r][0] = acc[r][0].fma(ar, g0);
                if !HALF {
                    acc[r][1] = acc[r][1].fma(ar, g1);
                }
            }
        }
        for r in 0..R {
            acc[r][0].store_ptr(out.add(r * ldo));
            if !HALF {
                acc[r][1].store_ptr(out.add(r * ldo + LANES));
            }
        }
    }
}

/// All column tiles of `R` reduction rows from `k0`.
///
/// # Safety
/// As for [`tile_tn`], for every column of `g` (`n` a multiple of 16).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn tn_rows<V: V16, const R: usize>(
    a: *const f32,
    lda: usize,
    g: *const f32,
    ldg: usize,
    m: usize,
    n: usize,
    out: *mut f32,
) {
    let mut j0 = 0;
    // SAFETY: columns j0..j0+w < n of g and out.
    unsafe {
        while V::REGISTERS >= 32 && j0 + NR <= n {
            tile_tn::<V, R, false>(a, lda, g.add(j0), ldg, m, out.add(j0), n);
            j0 += NR;
        }
        while j0 < n {
            tile_tn::<V, R, true>(a, lda, g.add(j0), ldg, m, out.add(j0), n);
            j0 += LANES;
        }
    }
}

simd_fn! {
    vector V;
    /// `out[kk][j] += Σ_i a[i][kk] · g[i][j]` for `i < m` (ascending), `kk < k`, `j < n` (`n` a
    /// multiple of 16; `a` at row stride `lda`, `g` at `ldg`, `out` `[k, n]` row-major): the weight
    /// gradient `Xᵀ G` of one chunk of rows, accumulated into `out`; with `colsum`, also
    /// `colsum[j] += Σ_i g[i][j]` (the bias gradient, `i` ascending) while the rows are in cache.
    pub fn gemm_tn_acc(
        a: &[f32],
        lda: usize,
        g: &[f32],
        ldg: usize,
        m: usize,
        k: usize,
        n: usize,
        out: &mut [f32],
        colsum: Option<&mut [f32]>,
    ) -> () {
        gemm_tn_acc_with::<V>(a, lda, g, ldg, m, k, n, out, colsum)
    }
}

/// [`gemm_tn_acc`] on the vectors `V`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn gemm_tn_acc_with<V: V16>(
    a: &[f32],
    lda: usize,
    g: &[f32],
    ldg: usize,
    m: usize,
    k: usize,
    n: usize,
    out: &mut [f32],
    colsum: Option<&mut [f32]>,
) {
    assert!(
        n.is_multiple_of(LANES),
        "gemm_tn_acc: n = {n} is not a multiple of 16"
    );
    if m == 0 || k == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm_tn_acc: a too short");
    assert!(g.len() >= (m - 1) * ldg + n, "gemm_tn_acc: g too short");
    assert!(out.len() >= k * n, "gemm_tn_acc: out too short");
    if let Some(cs) = colsum {
        for j0 in (0..n).step_by(LANES) {
            let mut acc = V::load(&cs[j0..]);
            for i in 0..m {
                acc = acc.add(V::load(&g[i * ldg + j0..]));
            }
            acc.store(&mut cs[j0..]);
        }
    }
    let (a, g, out) = (a.as_ptr(), g.as_ptr(), out.as_mut_ptr());
    if V::REGISTERS < 32 && n > k {
        // AVX2 with `g` wider than `a`: 16-column strips of `g` (m·64 bytes, in L1 for m = 256)
        // outermost, each met by every 6-row tile of `a` in turn (measured: 48 → 61 GFLOP/s at
        // k 64, n 256; with n ≤ k the order below is faster).
        // SAFETY: columns j0..j0+16 ≤ n of g and out, reduction rows k0..k0+R ≤ k, rows < m.
        unsafe {
            for j0 in (0..n).step_by(LANES) {
                let (gj, oj) = (g.add(j0), out.add(j0));
                let mut k0 = 0;
                while k0 + MR_AVX2 <= k {
                    tile_tn::<V, MR_AVX2, true>(a.add(k0), lda, gj, ldg, m, oj.add(k0 * n), n);
                    k0 += MR_AVX2;
                }
                while k0 + 4 <= k {
                    tile_tn::<V, 4, true>(a.add(k0), lda, gj, ldg, m, oj.add(k0 * n), n);
                    k0 += 4;
                }
                while k0 < k {
                    tile_tn::<V, 1, true>(a.add(k0), lda, gj, ldg, m, oj.add(k0 * n), n);
                    k0 += 1;
                }
            }
        }
        return;
    }
    let mut k0 = 0;
    // SAFETY: reduction rows k0..k0+R < k; all rows < m of a and g (asserts above).
    unsafe {
        if V::REGISTERS >= 32 {
            while k0 + 12 <= k {
                tn_rows::<V, 12>(a.add(k0), lda, g, ldg, m, n, out.add(k0 * n));
                k0 += 12;
            }
        } else {
            while k0 + MR_AVX2 <= k {
                tn_rows::<V, MR_AVX2>(a.add(k0), lda, g, ldg, m, n, out.add(k0 * n));
                k0 += MR_AVX2;
            }
        }
        while k0 + MR <= k {
            tn_rows::<V, MR>(a.add(k0), lda, g, ldg, m, n, out.add(k0 * n));
            k0 += MR;
        }
        while k0 + 4 <= k {
            tn_rows::<V, 4>(a.add(k0), lda, g, ldg, m, n, out.add(k0 * n));
            k0 += 4;
        }
        while k0 < k {
            tn_rows::<V, 1>(a.add(k0), lda, g, ldg, m, n, out.add(k0 * n));
            k0 += 1;
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

    /// The register tiles of both instruction sets compute exactly the definition, bit for bit:
    /// `c[i][j] = fma(a[i][k−1], b[k−1][j], … fma(a[i][0], b[0][j], 0)) + bias[j]` and
    /// `out[kk][j]` = its start value followed by `fma(a[i][kk], g[i][j], ·)` for ascending `i`.
    /// Shapes are chosen to leave remainders of every tile: 37 rows (8/6-row tiles), `k` 25 and
    /// 64, widths 16 (a lone half panel), 48 and 64.
    #[test]
    fn register_tiles_of_both_instruction_sets_compute_the_definition_bit_for_bit() {
        for (m, k, n) in [(37, 25, 48), (37, 64, 64), (13, 29, 16), (6, 64, 80)] {
            let a = draws(m * k, "gemm.a");
            let w = draws(k * n, "gemm.w");
            let bias = draws(n, "gemm.bias");
            let g = draws(m * n, "gemm.g");
            let start = draws(k * n, "gemm.out");
            let mut want = vec![0.0f32; m * n];
            for i in 0..m {
                for j in 0..n {
                    let s = (0..k).fold(0.0f32, |s, kk| a[i * k + kk].mul_add(w[kk * n + j], s));
                    want[i * n + j] = s + bias[j];
                }
            }
            let mut want_tn = start.clone();
            for kk in 0..k {
                for j in 0..n {
                    want_tn[kk * n + j] = (0..m).fold(start[kk * n + j], |s, i| {
                        a[i * k + kk].mul_add(g[i * n + j], s)
                    });
                }
            }
            let mut want_colsum = bias.clone();
            for (j, cs) in want_colsum.iter_mut().enumerate() {
                *cs = (0..m).fold(*cs, |s, i| s + g[i * n + j]);
            }
            let panels = Panels::pack(&w, k, n, n, 1);
            let check = |name: &str, got: &[f32], want: &[f32]| {
                let same = got
                    .iter()
                    .zip(want)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(
                    same,
                    "{name} differs from its definition at m {m}, k {k}, n {n}"
                );
            };
            #[allow(clippy::too_many_arguments)]
            fn run<V: V16>(
                a: &[f32],
                m: usize,
                k: usize,
                n: usize,
                panels: &Panels,
                bias: &[f32],
                g: &[f32],
                start: &[f32],
            ) -> [Vec<f32>; 3] {
                let mut c = vec![0.0f32; m * n];
                gemm_rows_with::<V>(a, k, m, panels, Some(bias), &mut c, n);
                let (mut out, mut cs) = (start.to_vec(), bias.to_vec());
                gemm_tn_acc_with::<V>(a, k, g, n, m, k, n, &mut out, Some(&mut cs));
                [c, out, cs]
            }
            for (regs, got) in [
                (
                    32,
                    run::<Emulated<32>>(&a, m, k, n, &panels, &bias, &g, &start),
                ),
                (
                    8,
                    run::<Emulated<8>>(&a, m, k, n, &panels, &bias, &g, &start),
                ),
            ] {
                check(&format!("X·W + b ({regs} registers)"), &got[0], &want);
                check(&format!("Xᵀ·G ({regs} registers)"), &got[1], &want_tn);
                check(&format!("Σ_i G ({regs} registers)"), &got[2], &want_colsum);
            }
            // And the compiled kernel this CPU runs.
            if level() != Level::None {
                let mut c = vec![0.0f32; m * n];
                gemm_rows(&a, k, m, &panels, Some(&bias), &mut c, n).expect("kernel");
                check("X·W + b (this CPU)", &c, &want);
                let (mut out, mut cs) = (start.clone(), bias.clone());
                gemm_tn_acc(&a, k, &g, n, m, k, n, &mut out, Some(&mut cs)).expect("kernel");
                check("Xᵀ·G (this CPU)", &out, &want_tn);
                check("Σ_i G (this CPU)", &cs, &want_colsum);
            }
        }
    }
}
