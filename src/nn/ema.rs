//! The exponential moving average of the target networks (method §4.3, Eq. 8).

use super::params::{ParamId, ParamStore};
use crate::float::Float;
use ndarray::{ArrayD, Zip};

/// `ξ ← m ξ + (1 − m) θ` for each pair `(target_ids[i], online_ids[i])`, target and online
/// parameters in two stores (method Eq. 8; a target store is typically made with
/// [`ParamStore::copy_subset`]).
///
/// `m` and `1 − m` are formed in f64 and rounded to `T`. The limits are exact: `m = 0` copies `θ`
/// and `m = 1` leaves `ξ` untouched, bit for bit (the formula alone could turn a `−0.0` into
/// `+0.0` or propagate a non-finite `θ`).
///
/// # Panics
/// If the id lists differ in length, a pair differs in shape, or `m ∉ [0, 1]` (programming
/// errors: the pairing is fixed by the model code).
pub fn ema_update<T: Float>(
    target: &mut ParamStore<T>,
    target_ids: &[ParamId],
    online: &ParamStore<T>,
    online_ids: &[ParamId],
    m: f64,
) {
    check(target_ids, online_ids, m);
    for (&ti, &oi) in target_ids.iter().zip(online_ids) {
        ema_one(target.get_mut(ti), online.get(oi), m);
    }
}

/// [`ema_update`] for target and online parameters kept in the same store (e.g. `target.vit.*`
/// next to `vit.*`).
///
/// # Panics
/// As [`ema_update`], and if a pair names the same parameter twice.
pub fn ema_update_within<T: Float>(
    store: &mut ParamStore<T>,
    target_ids: &[ParamId],
    online_ids: &[ParamId],
    m: f64,
) {
    check(target_ids, online_ids, m);
    for (&ti, &oi) in target_ids.iter().zip(online_ids) {
        let (xi, theta) = store.pair_mut(ti, oi);
        ema_one(xi, theta, m);
    }
}

fn check(target_ids: &[ParamId], online_ids: &[ParamId], m: f64) {
    assert_eq!(
        target_ids.len(),
        online_ids.len(),
        "ema_update: id lists differ in length"
    );
    assert!(
        (0.0..=1.0).contains(&m),
        "ema_update: momentum {m} outside [0, 1]"
    );
}

/// Eq. 8 on one tensor.
fn ema_one<T: Float>(xi: &mut ArrayD<T>, theta: &ArrayD<T>, m: f64) {
    assert_eq!(
        xi.shape(),
        theta.shape(),
        "ema_update: target/online shapes"
    );
    if m == 1.0 {
        return;
    }
    if m == 0.0 {
        xi.assign(theta);
        return;
    }
    let (mt, one_m) = (T::of(m), T::of(1.0 - m));
    Zip::from(xi)
        .and(theta)
        .for_each(|x, &t| *x = mt * *x + one_m * t);
}
