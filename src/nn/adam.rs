//! Adam with PyTorch semantics (method §4.5, §3.4, §9.4).
//!
//! For each parameter `θ` with gradient `g`, at its own step count `t` (starting at 1):
//!
//! ```text
//! g ← g + wd · θ                      (coupled L2 weight decay, torch.optim.Adam; wd = 0 by default)
//! m ← β₁ m + (1 − β₁) g
//! v ← β₂ v + (1 − β₂) g²
//! θ ← θ − lr · (m / (1 − β₁ᵗ)) / (sqrt(v / (1 − β₂ᵗ)) + ε)
//! ```
//!
//! `ε` is outside the square root (method §16). Moments start at zero. Like PyTorch, the step count
//! is kept per parameter, so [`Adam::reset_state`] (method §9.4: the moments of `μ, L` are reset every
//! epoch) restarts the bias correction of those parameters only. Gradient clipping, when used,
//! happens before the step and therefore before the weight decay is added (method §3.4).
//!
//! Rounding: the bias corrections `1 − βᵗ` are computed in f64 and rounded to `T`; the rest is
//! computed in `T` in the order written above. PyTorch rearranges the last line as
//! `θ − (lr/(1−β₁ᵗ)) · m / (sqrt(v)/sqrt(1−β₂ᵗ) + ε)` and updates `m` with `lerp`; both differ from
//! the formula only by rounding.

use super::params::{ParamId, ParamStore};
use crate::float::Float;
use ndarray::{ArrayD, Zip};

/// Per-parameter optimiser state.
#[derive(Clone, Debug)]
pub struct AdamState<T: Float> {
    /// First moment `m`.
    pub m: ArrayD<T>,
    /// Second moment `v`.
    pub v: ArrayD<T>,
    /// Number of steps taken on this parameter.
    pub step: u64,
}

/// The Adam optimiser; state is indexed by `ParamId.0` of the store it steps.
#[derive(Clone, Debug)]
pub struct Adam<T: Float> {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Coupled L2 weight decay (`g ← g + wd·θ`), PyTorch `Adam(weight_decay=…)`.
    pub weight_decay: f64,
    state: Vec<Option<AdamState<T>>>,
}

impl<T: Float> Adam<T> {
    /// Adam with learning rate `lr`, `β = (0.9, 0.999)`, `ε = 1e-8`, no weight decay (method §4.5).
    pub fn new(lr: f64) -> Self {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            state: Vec::new(),
        }
    }

    /// The same optimiser with coupled weight decay `wd` (method §3.4: 1e-4 for the GAT).
    pub fn with_weight_decay(mut self, wd: f64) -> Self {
        self.weight_decay = wd;
        self
    }

    /// The state of a parameter (`None` before its first step or after a reset).
    pub fn state(&self, id: ParamId) -> Option<&AdamState<T>> {
        self.state.get(id.0).and_then(|s| s.as_ref())
    }

    /// Every parameter's state, by id (for checkpoints; parameters without state are left out).
    pub fn states(&self) -> impl Iterator<Item = (ParamId, &AdamState<T>)> + '_ {
        self.state
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (ParamId(i), s)))
    }

    /// Set the state of parameter `id`, as if it had taken `state.step` steps: restoring a
    /// checkpoint written from [`Self::states`], or a golden fixture that starts a step from a
    /// stored optimiser state (so that the step depends on more than the gradients' signs).
    pub fn set_state(&mut self, id: ParamId, state: AdamState<T>) {
        if self.state.len() <= id.0 {
            self.state.resize_with(id.0 + 1, || None);
        }
        self.state[id.0] = Some(state);
    }

    /// Forget the moments and step counts of `ids` (method §9.4).
    pub fn reset_state(&mut self, ids: &[ParamId]) {
        for id in ids {
            if let Some(s) = self.state.get_mut(id.0) {
                *s = None;
            }
        }
    }

    /// One update of the parameters `ids` with their gradients `grads` (same order and shapes).
    ///
    /// # Panics
    /// If `ids` and `grads` differ in length or a gradient's shape differs from its parameter's
    /// (both are fixed by the model code, not by user input).
    pub fn step(&mut self, store: &mut ParamStore<T>, ids: &[ParamId], grads: &[ArrayD<T>]) {
        assert_eq!(
            ids.len(),
            grads.len(),
            "Adam::step: one gradient per parameter"
        );
        let (b1, b2) = (T::of(self.beta1), T::of(self.beta2));
        let (one_m_b1, one_m_b2) = (T::of(1.0 - self.beta1), T::of(1.0 - self.beta2));
        let (lr, eps, wd) = (T::of(self.lr), T::of(self.eps), T::of(self.weight_decay));
        let decay = self.weight_decay != 0.0;
        for (&id, g) in ids.iter().zip(grads) {
            let theta = store.get_mut(id);
            assert_eq!(
                theta.shape(),
                g.shape(),
                "Adam::step: gradient shape of parameter {}",
                id.0
            );
            if self.state.len() <= id.0 {
                self.state.resize_with(id.0 + 1, || None);
            }
            let st = self.state[id.0].get_or_insert_with(|| AdamState {
                m: ArrayD::zeros(theta.raw_dim()),
                v: ArrayD::zeros(theta.raw_dim()),
                step: 0,
            });
            st.step += 1;
            let step = i32::try_from(st.step).unwrap_or(i32::MAX);
            let bc1 = T::of(1.0 - self.beta1.powi(step));
            let bc2 = T::of(1.0 - self.beta2.powi(step));
            Zip::from(&mut *theta)
                .and(&mut st.m)
                .and(&mut st.v)
                .and(g)
                .for_each(|th, m, v, &g| {
                    let g = if decay { g + wd * *th } else { g };
                    *m = b1 * *m + one_m_b1 * g;
                    *v = b2 * *v + one_m_b2 * g * g;
                    let m_hat = *m / bc1;
                    let v_hat = *v / bc2;
                    *th = *th - lr * m_hat / (v_hat.sqrt() + eps);
                });
        }
    }
}
