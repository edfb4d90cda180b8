//! The exponential moving average of the target networks (SPEC §4.3, Eq. 8).

use super::params::{ParamId, ParamStore};
use crate::float::Float;
use ndarray::Zip;

/// `ξ ← m ξ + (1 − m) θ` for each pair `(target_ids[i], online_ids[i])` (SPEC Eq. 8).
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
    assert_eq!(
        target_ids.len(),
        online_ids.len(),
        "ema_update: id lists differ in length"
    );
    assert!(
        (0.0..=1.0).contains(&m),
        "ema_update: momentum {m} outside [0, 1]"
    );
    if m == 1.0 {
        return;
    }
    let (mt, one_m) = (T::of(m), T::of(1.0 - m));
    for (&ti, &oi) in target_ids.iter().zip(online_ids) {
        let theta = online.get(oi);
        let xi = target.get_mut(ti);
        assert_eq!(
            xi.shape(),
            theta.shape(),
            "ema_update: shapes of target {} and online {}",
            ti.0,
            oi.0
        );
        if m == 0.0 {
            xi.assign(theta);
        } else {
            Zip::from(xi)
                .and(theta)
                .for_each(|x, &t| *x = mt * *x + one_m * t);
        }
    }
}
