//! The finite-difference gradient check of method §17, in f64.
//!
//! For a function `f` of several input tensors built on a [`Tape`], the autodiff gradient is
//! compared with central differences `(f(θ + h e) − f(θ − h e)) / 2h`, `h = 1e-6·max(1, |θ|)`:
//! on every scalar of a small tensor (≤ [`GradCheck::max_elementwise`] elements) and along
//! [`GradCheck::directions`] random unit directions of a larger one. A check passes when
//! `|g_fd − g_ad| ≤ 1e-7·max(1, |f(θ)|) + 1e-5·|g_fd|`. A non-scalar output is reduced to the
//! scalar `Σ w ⊙ out` with fixed random weights `w`, which exercises every output element.

use super::tape::{Tape, Var};
use crate::rng;
use ndarray::{ArrayD, IxDyn};
use rand::Rng;

/// Settings of the check (defaults are method §17's).
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Tensors with at most this many elements are checked element by element.
    pub max_elementwise: usize,
    /// Random directions for larger tensors.
    pub directions: usize,
    /// Relative step factor (`h = step·max(1, |θ|)`).
    pub step: f64,
    /// Absolute tolerance factor on `max(1, |f|)`.
    pub abs_tol: f64,
    /// Relative tolerance factor on `|g_fd|`.
    pub rel_tol: f64,
    /// Seed of the output weights and directions.
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            max_elementwise: 64,
            directions: 3,
            step: 1e-6,
            abs_tol: 1e-7,
            rel_tol: 1e-5,
            seed: 17,
        }
    }
}

/// One failed comparison.
#[derive(Clone, Debug)]
pub struct Failure {
    pub input: usize,
    /// Element index (element-wise mode) or direction number.
    pub at: String,
    pub fd: f64,
    pub ad: f64,
    pub tol: f64,
}

/// Outcome of a check.
#[derive(Clone, Debug)]
pub struct GradReport {
    /// Number of scalar comparisons made.
    pub comparisons: usize,
    /// Largest `|g_fd − g_ad| / tol` seen (< 1 means pass).
    pub worst_ratio: f64,
    pub failures: Vec<Failure>,
}

impl GradReport {
    /// Panic with a readable table unless every comparison passed (for tests).
    pub fn assert_ok(&self, name: &str) {
        assert!(self.comparisons > 0, "{name}: nothing was compared");
        if !self.failures.is_empty() {
            let rows: Vec<String> = self
                .failures
                .iter()
                .take(10)
                .map(|f| {
                    format!(
                        "  input {} at {}: fd {:.12e} ad {:.12e} tol {:.3e}",
                        f.input, f.at, f.fd, f.ad, f.tol
                    )
                })
                .collect();
            panic!(
                "{name}: {} of {} gradient comparisons failed:\n{}",
                self.failures.len(),
                self.comparisons,
                rows.join("\n")
            );
        }
    }
}

impl GradCheck {
    /// Check `f` at `inputs`. `f` receives a tape and one leaf per input (as parameters) and
    /// returns the output node.
    pub fn run<F>(&self, inputs: &[ArrayD<f64>], f: F) -> GradReport
    where
        F: Fn(&mut Tape<f64>, &[Var]) -> Var,
    {
        // Output weights from one recording pass.
        let mut t = Tape::new();
        let vars: Vec<Var> = inputs.iter().map(|x| t.param(x.clone())).collect();
        let out = f(&mut t, &vars);
        let out_shape = t.shape(out).to_vec();
        let mut wr = rng::stream(self.seed, "gradcheck.weights");
        let weights = if out_shape.iter().product::<usize>() == 1 {
            ArrayD::from_elem(IxDyn(&out_shape), 1.0)
        } else {
            ArrayD::from_shape_simple_fn(IxDyn(&out_shape), || wr.random_range(-1.0..1.0))
        };
        let grads = t.backward_with(out, weights.clone());
        let scalar = |inp: &[ArrayD<f64>]| -> f64 {
            let mut t = Tape::no_grad();
            let vars: Vec<Var> = inp.iter().map(|x| t.param(x.clone())).collect();
            let out = f(&mut t, &vars);
            t.value(out)
                .iter()
                .zip(weights.iter())
                .map(|(a, w)| a * w)
                .sum()
        };
        let f0 = scalar(inputs);
        let tol_abs = self.abs_tol * f0.abs().max(1.0);
        let mut report = GradReport {
            comparisons: 0,
            worst_ratio: 0.0,
            failures: Vec::new(),
        };
        let mut dr = rng::stream(self.seed, "gradcheck.directions");
        for (i, x) in inputs.iter().enumerate() {
            let ad = grads.get_or_zeros(vars[i], x.shape());
            let compare = |at: String, fd: f64, ad: f64, report: &mut GradReport| {
                let tol = tol_abs + self.rel_tol * fd.abs();
                let ratio = (fd - ad).abs() / tol;
                report.comparisons += 1;
                report.worst_ratio = report.worst_ratio.max(ratio);
                if ratio.is_nan() || ratio > 1.0 {
                    report.failures.push(Failure {
                        input: i,
                        at,
                        fd,
                        ad,
                        tol,
                    });
                }
            };
            if x.len() <= self.max_elementwise {
                for j in 0..x.len() {
                    let theta = x
                        .as_slice_memory_order()
                        .map(|s| s[j])
                        .unwrap_or_else(|| x.iter().nth(j).copied().unwrap_or(0.0));
                    let h = self.step * theta.abs().max(1.0);
                    let mut plus = inputs.to_vec();
                    let mut minus = inputs.to_vec();
                    plus[i] = plus[i].as_standard_layout().into_owned();
                    minus[i] = minus[i].as_standard_layout().into_owned();
                    plus[i].as_slice_mut().expect("std")[j] += h;
                    minus[i].as_slice_mut().expect("std")[j] -= h;
                    let fd = (scalar(&plus) - scalar(&minus)) / (2.0 * h);
                    let a = ad.as_standard_layout().as_slice().expect("std")[j];
                    compare(format!("element {j}"), fd, a, &mut report);
                }
            } else {
                let scale = x.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1.0);
                let h = self.step * scale;
                for d in 0..self.directions {
                    let mut u =
                        ArrayD::from_shape_simple_fn(x.raw_dim(), || dr.random_range(-1.0..1.0));
                    let norm = u.iter().map(|v| v * v).sum::<f64>().sqrt();
                    u.mapv_inplace(|v| v / norm);
                    let mut plus = inputs.to_vec();
                    let mut minus = inputs.to_vec();
                    plus[i] = &plus[i] + &(&u * h);
                    minus[i] = &minus[i] - &(&u * h);
                    let fd = (scalar(&plus) - scalar(&minus)) / (2.0 * h);
                    let a: f64 = ad.iter().zip(u.iter()).map(|(g, u)| g * u).sum();
                    compare(format!("direction {d}"), fd, a, &mut report);
                }
            }
        }
        report
    }
}

/// Check with the method §17 defaults and panic on failure (for tests).
pub fn assert_grad<F>(name: &str, inputs: &[ArrayD<f64>], f: F)
where
    F: Fn(&mut Tape<f64>, &[Var]) -> Var,
{
    GradCheck::default().run(inputs, f).assert_ok(name);
}
