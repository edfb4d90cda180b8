//! Weight initialisers (method §4.1 "Init", §3.4 "Init"), drawing from a named stream
//! ([`crate::rng::stream`]).
//!
//! Every draw is made in f64 and then rounded to `T`, so an f32 and an f64 model built from the
//! same stream start from the same weights up to f32 rounding. Values are drawn in row-major
//! order of `shape`.

use crate::float::Float;
use crate::rng::Stream;
use ndarray::{ArrayD, IxDyn};
use ndarray_rand::rand_distr::{Distribution, StandardNormal};
use rand::Rng;

/// Xavier/Glorot uniform: `U(−a, a)`, `a = sqrt(6 / (fan_in + fan_out))` (gain 1, the MAE
/// convention for Linear weights, method §4.1).
pub fn xavier_uniform<T: Float>(
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    rng: &mut Stream,
) -> ArrayD<T> {
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    ArrayD::from_shape_simple_fn(IxDyn(shape), || T::of(rng.random_range(-a..a)))
}

/// Xavier/Glorot normal: `N(0, std²)`, `std = gain · sqrt(2 / (fan_in + fan_out))` (the GAT's
/// `W1, W2` with gain 1.414, method §3.4).
pub fn xavier_normal<T: Float>(
    shape: &[usize],
    fan_in: usize,
    fan_out: usize,
    gain: f64,
    rng: &mut Stream,
) -> ArrayD<T> {
    let std = gain * (2.0 / (fan_in + fan_out) as f64).sqrt();
    normal(shape, std, rng)
}

/// `N(0, std²)` (the mask token, `std = 0.02`, method §4.2; GAT attention vectors, method §3.4).
pub fn normal<T: Float>(shape: &[usize], std: f64, rng: &mut Stream) -> ArrayD<T> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let z: f64 = StandardNormal.sample(rng);
        T::of(std * z)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn bounds_moments_and_precision_agreement() {
        let mut r = rng::stream(1, "init.test");
        let w: ArrayD<f64> = xavier_uniform(&[64, 192], 64, 192, &mut r);
        // a = sqrt(6 / 256) = 0.1530931…
        let a = (6.0f64 / 256.0).sqrt();
        assert!(w.iter().all(|&x| x.abs() < a));
        // Variance of U(−a, a) is a²/3 = 2/256; 12288 draws give a standard error of ~1.3 % on it.
        let var = w.iter().map(|x| x * x).sum::<f64>() / w.len() as f64;
        assert!((var / (2.0 / 256.0) - 1.0).abs() < 0.06, "var {var}");
        let mut r1 = rng::stream(1, "init.test");
        let mut r2 = rng::stream(1, "init.test");
        let n64: ArrayD<f64> = xavier_normal(&[30, 40], 30, 40, 1.414, &mut r1);
        let n32: ArrayD<f32> = xavier_normal(&[30, 40], 30, 40, 1.414, &mut r2);
        for (a, b) in n64.iter().zip(n32.iter()) {
            assert_eq!(*a as f32, *b);
        }
        // std = 1.414·sqrt(2/70) = 0.23901…; 1200 draws give ~2 % standard error on the variance.
        let sd = (n64.iter().map(|x| x * x).sum::<f64>() / n64.len() as f64).sqrt();
        assert!(
            (sd / (1.414 * (2.0f64 / 70.0).sqrt()) - 1.0).abs() < 0.08,
            "sd {sd}"
        );
    }
}
