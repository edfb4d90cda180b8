//! Sixteen f32 lanes in registers, for the explicit-SIMD kernels of [`super`]: one `__m512` with
//! AVX-512, two `__m256` with AVX2. Both do the same IEEE operation on every lane (a fused
//! multiply-add is one rounding in both), so a kernel written with [`V16`] gives the same bits on
//! either instruction set.
//!
//! The methods are `#[inline(always)]` and only sound to call from code compiled with the
//! matching target features: the kernels that use them are entered through `simd_fn!`, which
//! checks the CPU and compiles them with those features.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Sixteen f32 lanes. Loads and stores read or write `s[0..16]` of a slice (bounds-checked).
pub trait V16: Copy {
    /// How many 16-lane vectors the register file holds: 32 with AVX-512 (32 `zmm`), 8 with AVX2
    /// (16 `ymm`). The kernels size their register blocks by it; a block that does not fit spills
    /// to the stack on every step. Splitting a block into smaller ones changes no result: every
    /// output element still gets the same operations in the same order.
    const REGISTERS: usize;
    /// All lanes 0.
    fn zero() -> Self;
    /// All lanes `x`.
    fn splat(x: f32) -> Self;
    /// Lanes `s[0..16]`.
    fn load(s: &[f32]) -> Self;
    /// Write the lanes to `s[0..16]`.
    fn store(self, s: &mut [f32]);
    /// Lanes `p[0..16]`.
    ///
    /// # Safety
    /// `p` must be valid for reading 16 f32.
    unsafe fn load_ptr(p: *const f32) -> Self;
    /// Write the lanes to `p[0..16]`.
    ///
    /// # Safety
    /// `p` must be valid for writing 16 f32.
    unsafe fn store_ptr(self, p: *mut f32);
    /// `a · b + self` per lane, one rounding.
    fn fma(self, a: Self, b: Self) -> Self;
    /// `self · b` per lane.
    fn mul(self, b: Self) -> Self;
    /// `self + b` per lane.
    fn add(self, b: Self) -> Self;
    /// `self − b` per lane.
    fn sub(self, b: Self) -> Self;
    /// `max(self, b)` per lane (`b` where either is NaN, as `vmaxps`).
    fn max(self, b: Self) -> Self;
    /// `min(self, b)` per lane (`b` where either is NaN, as `vminps`).
    fn min(self, b: Self) -> Self;
    /// The bits of each lane, read as an integer, shifted left by 23 and read back as f32 (builds
    /// `2ⁿ` from `n + 127` held in the low mantissa bits).
    fn shl23(self) -> Self;
    /// The lanes as an array.
    fn to_array(self) -> [f32; 16] {
        let mut a = [0.0f32; 16];
        self.store(&mut a);
        a
    }
}

/// `eˣ` per lane, the same operations in the same order as the scalar [`super::exp`] (so each
/// lane gives the scalar's bits).
#[inline(always)]
pub fn exp<V: V16>(x: V) -> V {
    // Operand order keeps NaN: `max`/`min` return their second operand when either is NaN.
    let x = V::splat(88.5).min(V::splat(-87.0).max(x));
    let t = V::splat(12_582_912.0 + 127.0).fma(x, V::splat(std::f32::consts::LOG2_E));
    let n = t.sub(V::splat(12_582_912.0 + 127.0));
    let r = x.fma(n, V::splat(-0.693_359_4));
    let r = r.fma(n, V::splat(2.121_944_4e-4));
    let mut p = V::splat(1.398_199_9e-3).fma(V::splat(1.987_569_1e-4), r);
    p = V::splat(8.333_452e-3).fma(p, r);
    p = V::splat(4.166_579_6e-2).fma(p, r);
    p = V::splat(1.666_666_5e-1).fma(p, r);
    p = V::splat(0.5).fma(p, r);
    let y = r.fma(p.mul(r), r).add(V::splat(1.0));
    y.mul(t.shl23())
}

/// AVX-512F: one 512-bit register.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx512(__m512);

#[cfg(target_arch = "x86_64")]
impl V16 for Avx512 {
    const REGISTERS: usize = 32;
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY (all methods): only reached from `simd_fn!` bodies compiled with AVX-512F on a CPU
        // that has it (see the module doc); memory accesses go through bounds-checked slices.
        unsafe { Avx512(_mm512_setzero_ps()) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        unsafe { Avx512(_mm512_set1_ps(x)) }
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..16];
        unsafe { Avx512(_mm512_loadu_ps(s.as_ptr())) }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..16];
        unsafe { _mm512_storeu_ps(s.as_mut_ptr(), self.0) }
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        unsafe { Avx512(_mm512_loadu_ps(p)) }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        unsafe { Avx512(_mm512_fmadd_ps(a.0, b.0, self.0)) }
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_mul_ps(self.0, b.0)) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_add_ps(self.0, b.0)) }
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_sub_ps(self.0, b.0)) }
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_max_ps(self.0, b.0)) }
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        unsafe { Avx512(_mm512_min_ps(self.0, b.0)) }
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        unsafe {
            Avx512(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(
                _mm512_castps_si512(self.0),
            )))
        }
    }
}

/// AVX2 + FMA: two 256-bit registers (lanes 0–7 and 8–15).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub struct Avx2(__m256, __m256);

#[cfg(target_arch = "x86_64")]
impl V16 for Avx2 {
    const REGISTERS: usize = 8;
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY (all methods): only reached from `simd_fn!` bodies compiled with AVX2 and FMA on a
        // CPU that has them (see the module doc); memory accesses go through bounds-checked slices.
        unsafe { Avx2(_mm256_setzero_ps(), _mm256_setzero_ps()) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        unsafe { Avx2(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
    }
    #[inline(always)]
    fn load(s: &[f32]) -> Self {
        let s = &s[..16];
        unsafe {
            Avx2(
                _mm256_loadu_ps(s.as_ptr()),
                _mm256_loadu_ps(s.as_ptr().add(8)),
            )
        }
    }
    #[inline(always)]
    fn store(self, s: &mut [f32]) {
        let s = &mut s[..16];
        unsafe {
            _mm256_storeu_ps(s.as_mut_ptr(), self.0);
            _mm256_storeu_ps(s.as_mut_ptr().add(8), self.1);
        }
    }
    #[inline(always)]
    unsafe fn load_ptr(p: *const f32) -> Self {
        unsafe { Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
    }
    #[inline(always)]
    unsafe fn store_ptr(self, p: *mut f32) {
        unsafe {
            _mm256_storeu_ps(p, self.0);
            _mm256_storeu_ps(p.add(8), self.1);
        }
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        unsafe {
            Avx2(
                _mm256_fmadd_ps(a.0, b.0, self.0),
                _mm256_fmadd_ps(a.1, b.1, self.1),
            )
        }
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_mul_ps(self.0, b.0), _mm256_mul_ps(self.1, b.1)) }
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_add_ps(self.0, b.0), _mm256_add_ps(self.1, b.1)) }
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_sub_ps(self.0, b.0), _mm256_sub_ps(self.1, b.1)) }
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_max_ps(self.0, b.0), _mm256_max_ps(self.1, b.1)) }
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        unsafe { Avx2(_mm256_min_ps(self.0, b.0), _mm256_min_ps(self.1, b.1)) }
    }
    #[inline(always)]
    fn shl23(self) -> Self {
        unsafe {
            let s =
                |v: __m256| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_castps_si256(v)));
            Avx2(s(self.0), s(self.1))
        }
    }
}

/// Sixteen lanes in plain Rust with a register file of `REGISTERS` vectors, for tests: the
/// kernels run on it with either register blocking ([`Avx512`]'s 32 or [`Avx2`]'s 8) on any CPU,
/// and each lane does the IEEE operation of the real instruction (`mul_add` is one rounding).
#[cfg(test)]
#[derive(Clone, Copy)]
pub struct Emulated<const REGISTERS: usize>([f32; 16]);

#[cfg(test)]
impl<const REGISTERS: usize> Emulated<REGISTERS> {
    fn map2(self, b: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let mut o = self.0;
        for (v, w) in o.iter_mut().zip(b.0) {
            *v = f(*v, w);
        }
        Emulated(o)
    }
}

#[cfg(test)]
impl<const REGISTERS: usize> V16 for Emulated<REGISTERS> {
    const REGISTERS: usize = REGISTERS;
    fn zero() -> Self {
        Emulated([0.0; 16])
    }
    fn splat(x: f32) -> Self {
        Emulated([x; 16])
    }
    fn load(s: &[f32]) -> Self {
        Emulated(s[..16].try_into().expect("16 lanes"))
    }
    fn store(self, s: &mut [f32]) {
        s[..16].copy_from_slice(&self.0);
    }
    unsafe fn load_ptr(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable floats at `p`.
        Emulated(unsafe { std::ptr::read_unaligned(p as *const [f32; 16]) })
    }
    unsafe fn store_ptr(self, p: *mut f32) {
        // SAFETY: the caller guarantees 16 writable floats at `p`.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 16], self.0) }
    }
    fn fma(self, a: Self, b: Self) -> Self {
        let mut o = self.0;
        for ((v, x), y) in o.iter_mut().zip(a.0).zip(b.0) {
            *v = x.mul_add(y, *v);
        }
        Emulated(o)
    }
    fn mul(self, b: Self) -> Self {
        self.map2(b, |x, y| x * y)
    }
    fn add(self, b: Self) -> Self {
        self.map2(b, |x, y| x + y)
    }
    fn sub(self, b: Self) -> Self {
        self.map2(b, |x, y| x - y)
    }
    fn max(self, b: Self) -> Self {
        // `vmaxps`: the second operand unless the first is greater (so `b` on NaN).
        self.map2(b, |x, y| if x > y { x } else { y })
    }
    fn min(self, b: Self) -> Self {
        self.map2(b, |x, y| if x < y { x } else { y })
    }
    fn shl23(self) -> Self {
        let mut o = self.0;
        for v in o.iter_mut() {
            *v = f32::from_bits(v.to_bits() << 23);
        }
        Emulated(o)
    }
}
