//! The scalar type behind every tensor: one generic code path for `f32` (speed) and `f64`
//! (oracle, gradient checks, fixtures).

use ndarray::{LinalgScalar, ScalarOperand};

/// Run `f` with subnormal f32/f64 inputs read as zero and subnormal results flushed to zero (x86
/// MXCSR `DAZ` and `FTZ`), restoring the caller's mode afterwards. Only the f32 speed kernels use
/// it: on Intel CPUs every operation that meets a subnormal takes a microcode assist worth
/// hundreds of cycles (the GAT's backward product `Xᵀ ∂P₁`, whose `∂P₁` picks up ELU gradients
/// `eˣ` below 2⁻¹²⁶, ran 20× slower), and values below 1.2·10⁻³⁸ are far under the f32 path's
/// tolerance (method §16). The f64 oracle never runs under it. Elsewhere than x86-64 it just calls
/// `f`.
pub fn flush_subnormals<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        // DAZ (bit 6) and FTZ (bit 15) of MXCSR.
        const DAZ_FTZ: u32 = (1 << 6) | (1 << 15);
        let mut old: u32 = 0;
        // SAFETY: `stmxcsr` stores the 32-bit control/status register to a valid u32 we own.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut old, options(nostack, preserves_flags));
        }
        if old & DAZ_FTZ == DAZ_FTZ {
            return f();
        }
        let new = old | DAZ_FTZ;
        // SAFETY: `ldmxcsr` loads a valid MXCSR value (the current one with two mode bits set).
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, preserves_flags));
        }
        struct Restore(u32);
        impl Drop for Restore {
            fn drop(&mut self) {
                // SAFETY: restores the MXCSR value read above (also on unwinding).
                unsafe {
                    std::arch::asm!("ldmxcsr [{}]", in(reg) &self.0, options(nostack, preserves_flags));
                }
            }
        }
        let _restore = Restore(old);
        f()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        f()
    }
}
use std::fmt::{Debug, Display};
use std::iter::Sum;

/// A floating-point scalar darlc can compute in: `f32` or `f64`.
///
/// Beyond `num_traits::Float` it knows its GEMM kernel (matrixmultiply's `sgemm` / `dgemm`) and its
/// safetensors dtype, so tensors of either precision can be multiplied and saved by the same code.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + LinalgScalar
    + ScalarOperand
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// The safetensors dtype of this scalar.
    const DTYPE: safetensors::Dtype;
    /// Bytes per scalar.
    const BYTES: usize;
    /// Short name for messages and file metadata ("f32" / "f64").
    const NAME: &'static str;

    /// Exact conversion from f64 for f64, rounding for f32.
    fn of(x: f64) -> Self;
    /// Widening to f64 (exact for both types).
    fn f64(self) -> f64;
    /// The error function (libm's `erf`/`erff`), for the exact GELU.
    fn erf(self) -> Self;

    /// The same slice as `f32` if `Self` is `f32` (for f32-only fast kernels), else `None`.
    fn as_f32(xs: &[Self]) -> Option<&[f32]>;
    /// Mutable variant of [`Float::as_f32`].
    fn as_f32_mut(xs: &mut [Self]) -> Option<&mut [f32]>;

    /// `C ← α·A·B + β·C` on strided row/column layouts (matrixmultiply's contract).
    ///
    /// # Safety
    /// The pointers and strides must describe valid `m×k`, `k×n` and `m×n` matrices; `c` must not
    /// alias `a` or `b`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );

    /// Little-endian bytes of a slice (for safetensors).
    fn to_le_bytes_vec(xs: &[Self]) -> Vec<u8>;
    /// Parse little-endian bytes (length must be a multiple of `BYTES`).
    fn from_le_bytes_vec(b: &[u8]) -> Vec<Self>;
}

impl Float for f32 {
    const DTYPE: safetensors::Dtype = safetensors::Dtype::F32;
    const BYTES: usize = 4;
    const NAME: &'static str = "f32";
    #[inline]
    fn of(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn f64(self) -> f64 {
        self as f64
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erff(self)
    }
    #[inline]
    fn as_f32(xs: &[Self]) -> Option<&[f32]> {
        Some(xs)
    }
    #[inline]
    fn as_f32_mut(xs: &mut [Self]) -> Option<&mut [f32]> {
        Some(xs)
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        // The f32 path runs without subnormals (see `flush_subnormals`).
        flush_subnormals(|| unsafe {
            matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        })
    }
    fn to_le_bytes_vec(xs: &[Self]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn from_le_bytes_vec(b: &[u8]) -> Vec<Self> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }
}

impl Float for f64 {
    const DTYPE: safetensors::Dtype = safetensors::Dtype::F64;
    const BYTES: usize = 8;
    const NAME: &'static str = "f64";
    #[inline]
    fn of(x: f64) -> Self {
        x
    }
    #[inline]
    fn f64(self) -> f64 {
        self
    }
    #[inline]
    fn erf(self) -> Self {
        libm::erf(self)
    }
    #[inline]
    fn as_f32(_: &[Self]) -> Option<&[f32]> {
        None
    }
    #[inline]
    fn as_f32_mut(_: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
    unsafe fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    ) {
        unsafe {
            matrixmultiply::dgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc)
        }
    }
    fn to_le_bytes_vec(xs: &[Self]) -> Vec<u8> {
        xs.iter().flat_map(|x| x.to_le_bytes()).collect()
    }
    fn from_le_bytes_vec(b: &[u8]) -> Vec<Self> {
        b.chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect()
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod flush_tests {
    use super::flush_subnormals;
    use std::hint::black_box;

    #[test]
    fn flush_subnormals_zeroes_subnormals_inside_and_restores_the_mode() {
        let tiny = black_box(f32::MIN_POSITIVE / 4.0); // a subnormal, 2^-128
        assert!(tiny > 0.0 && !tiny.is_normal());
        let before = black_box(tiny) * black_box(1.0f32);
        let inside = flush_subnormals(|| black_box(tiny) * black_box(1.0f32));
        let after = black_box(tiny) * black_box(1.0f32);
        assert_eq!(before, tiny, "IEEE subnormals outside");
        assert_eq!(inside, 0.0, "read as zero (DAZ) inside");
        assert_eq!(after, tiny, "the caller's mode is restored");
        // A normal product that would round to a subnormal is flushed (FTZ).
        let half_min = flush_subnormals(|| black_box(f32::MIN_POSITIVE) * black_box(0.5f32));
        assert_eq!(half_min, 0.0);
    }
}
