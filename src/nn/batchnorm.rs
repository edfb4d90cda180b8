//! BatchNorm over the rows of `[n, c]` with running statistics (method §5; `eps = 1e-5`,
//! momentum 0.1, affine `γ = 1, β = 0` at init).
//!
//! * Train mode ([`BatchNorm1d::forward_train`]): batch mean and **biased** variance normalise;
//!   the running statistics move by `r ← 0.9 r + 0.1 s` with the **unbiased** batch variance
//!   `σ²_B · n/(n−1)` (method §5, §16).
//! * Eval mode ([`BatchNorm1d::forward_eval`]): `γ (x − rm)/sqrt(rv + eps) + β`, the running
//!   statistics being constants of the tape.
//! * Calibration ([`BatchNorm1d::calibrate`], method §5 CHOICE): running statistics set to the
//!   exact full-dataset mean and unbiased variance.
//!
//! # Buffers in files
//! The running statistics are not trainable, so they are not in the [`ParamStore`]; they live in
//! the layer. [`BatchNorm1d::buffers`] names them `prefix.running_mean` and `prefix.running_var`
//! (PyTorch's `state_dict` names) for [`ParamStore::to_tensor_file_with`], and
//! [`BatchNorm1d::load_buffers`] reads them back from a file.

use super::params::{Bound, ParamId, ParamStore, read_float_tensor};
use crate::autodiff::{Tape, Var};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use crate::io::TensorFile;
use ndarray::{Array1, ArrayD, ArrayView2, IxDyn};
use std::path::Path;

/// BatchNorm1d: affine parameters in the store, running statistics in the layer.
#[derive(Clone, Debug)]
pub struct BatchNorm1d<T: Float> {
    /// Dotted prefix (`proj.bn`); buffers are `prefix.running_mean`, `prefix.running_var`.
    pub prefix: String,
    pub gamma: ParamId,
    pub beta: ParamId,
    pub running_mean: Array1<T>,
    pub running_var: Array1<T>,
    pub momentum: f64,
    pub eps: f64,
}

impl<T: Float> BatchNorm1d<T> {
    /// Register `prefix.gamma` (ones) and `prefix.beta` (zeros) for `c` features; running
    /// statistics start at mean 0, variance 1 (PyTorch).
    pub fn new(store: &mut ParamStore<T>, prefix: &str, c: usize) -> Self {
        let gamma = store.add(
            &format!("{prefix}.gamma"),
            ArrayD::from_elem(IxDyn(&[c]), T::one()),
        );
        let beta = store.add(&format!("{prefix}.beta"), ArrayD::zeros(IxDyn(&[c])));
        BatchNorm1d {
            prefix: prefix.to_string(),
            gamma,
            beta,
            running_mean: Array1::zeros(c),
            running_var: Array1::ones(c),
            momentum: 0.1,
            eps: 1e-5,
        }
    }

    /// Number of features `c`.
    pub fn features(&self) -> usize {
        self.running_mean.len()
    }

    /// Train mode on `x: [n, c]`: normalise with the batch statistics and update the running
    /// statistics (method §5). Errors on a batch of fewer than 2 rows (the unbiased variance is
    /// undefined; PyTorch refuses too).
    pub fn forward_train(&mut self, t: &mut Tape<T>, p: &Bound, x: Var) -> Result<Var> {
        let n = t.shape(x)[0];
        let (y, mean, var) = self.forward_batch(t, p, x)?;
        self.update_running(&mean, &var, n);
        Ok(y)
    }

    /// Train-mode output without touching the running statistics: `(y, batch mean, biased batch
    /// variance)`. [`Self::forward_train`] is this followed by [`Self::update_running`].
    pub fn forward_batch(
        &self,
        t: &mut Tape<T>,
        p: &Bound,
        x: Var,
    ) -> Result<(Var, Array1<T>, Array1<T>)> {
        self.check_input(t.shape(x))?;
        if t.shape(x)[0] < 2 {
            return Err(DarlcError::Data(format!(
                "BatchNorm `{}`: training needs a batch of at least 2 rows, got {}",
                self.prefix,
                t.shape(x)[0]
            )));
        }
        Ok(t.batch_norm_train(x, p.var(self.gamma), p.var(self.beta), self.eps))
    }

    /// `rm ← (1 − momentum) rm + momentum μ_B`, `rv ← (1 − momentum) rv + momentum σ²_B n/(n−1)`
    /// from a batch of `n ≥ 2` rows with biased variance `σ²_B`.
    pub fn update_running(&mut self, mean: &Array1<T>, biased_var: &Array1<T>, n: usize) {
        assert!(n >= 2, "update_running: n = {n}");
        let mom = T::of(self.momentum);
        let keep = T::of(1.0 - self.momentum);
        let unbias = T::of(n as f64 / (n - 1) as f64);
        self.running_mean
            .zip_mut_with(mean, |r, &m| *r = keep * *r + mom * m);
        self.running_var
            .zip_mut_with(biased_var, |r, &v| *r = keep * *r + mom * (v * unbias));
    }

    /// Eval mode on `x: [n, c]`: `y = (x − rm) · (1/sqrt(rv + eps)) · γ + β` (the running
    /// statistics are tape constants; gradients reach `x`, `γ`, `β`). Rows are independent, so
    /// the output does not depend on how the data are chunked.
    pub fn forward_eval(&self, t: &mut Tape<T>, p: &Bound, x: Var) -> Var {
        let c = self.features();
        assert_eq!(
            t.shape(x),
            &[t.shape(x)[0], c],
            "BatchNorm `{}`: input must be [n, {c}]",
            self.prefix
        );
        let eps = T::of(self.eps);
        let rm = t.constant(self.running_mean.clone().into_dyn());
        let inv = t.constant(
            self.running_var
                .mapv(|v| T::one() / (v + eps).sqrt())
                .into_dyn(),
        );
        let centred = t.sub(x, rm);
        let xhat = t.mul(centred, inv);
        let scaled = t.mul(xhat, p.var(self.gamma));
        t.add(scaled, p.var(self.beta))
    }

    /// method §5 CHOICE (calibration): set `rm`, `rv` to the exact mean and unbiased variance of
    /// the full BN input `[N, c]` (two passes, f64 accumulation in row order, rounded to `T`).
    pub fn calibrate(&mut self, full_input: ArrayView2<T>) -> Result<()> {
        let (n, c) = full_input.dim();
        if c != self.features() {
            return Err(DarlcError::Data(format!(
                "BatchNorm `{}` calibration: input has {c} features, the layer {}",
                self.prefix,
                self.features()
            )));
        }
        if n < 2 {
            return Err(DarlcError::Data(format!(
                "BatchNorm `{}` calibration needs at least 2 rows, got {n}",
                self.prefix
            )));
        }
        let mut mean = vec![0.0f64; c];
        for row in full_input.rows() {
            for (m, &x) in mean.iter_mut().zip(row) {
                *m += x.f64();
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut ss = vec![0.0f64; c];
        for row in full_input.rows() {
            for ((s, &x), &m) in ss.iter_mut().zip(row).zip(&mean) {
                let d = x.f64() - m;
                *s += d * d;
            }
        }
        self.running_mean = mean.iter().map(|&m| T::of(m)).collect();
        self.running_var = ss.iter().map(|&s| T::of(s / (n - 1) as f64)).collect();
        Ok(())
    }

    /// The running statistics as named buffers (`prefix.running_mean`, `prefix.running_var`).
    pub fn buffers(&self) -> Vec<(String, ArrayD<T>)> {
        vec![
            (
                format!("{}.running_mean", self.prefix),
                self.running_mean.clone().into_dyn(),
            ),
            (
                format!("{}.running_var", self.prefix),
                self.running_var.clone().into_dyn(),
            ),
        ]
    }

    /// Read the running statistics from `file` (errors name `path` and the tensor).
    pub fn load_buffers(&mut self, file: &TensorFile, path: &Path) -> Result<()> {
        let c = self.features();
        let rm =
            read_float_tensor::<T>(file, path, &format!("{}.running_mean", self.prefix), &[c])?;
        let rv = read_float_tensor::<T>(file, path, &format!("{}.running_var", self.prefix), &[c])?;
        self.running_mean = Array1::from_iter(rm.iter().copied());
        self.running_var = Array1::from_iter(rv.iter().copied());
        Ok(())
    }

    fn check_input(&self, shape: &[usize]) -> Result<()> {
        if shape.len() != 2 || shape[1] != self.features() {
            return Err(DarlcError::Data(format!(
                "BatchNorm `{}`: input must be [n, {}], got {shape:?}",
                self.prefix,
                self.features()
            )));
        }
        Ok(())
    }
}
