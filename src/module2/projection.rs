//! The projection head `g_p` (method Eq. 12, §5):
//! `z = SELU(BN(h W_p1 + b_p1)) W_p2 + b_p2`, `D → 32 → 32`.
//!
//! Parameters are named `proj.lin1.{W,b}`, `proj.bn.{gamma,beta}` (+ buffers
//! `proj.bn.running_{mean,var}`), `proj.lin2.{W,b}`. BatchNorm runs in train mode in batch-level
//! steps and in eval mode for every full-dataset pass; at the start of the joint phase its running
//! statistics are calibrated exactly on the whole dataset (method §5, CHOICE 24).

use crate::autodiff::{Tape, Var};
use crate::error::Result;
use crate::float::Float;
use crate::nn::batchnorm::BatchNorm1d;
use crate::nn::linear::Linear;
use crate::nn::params::{Bound, ParamStore};
use crate::rng::Stream;
use ndarray::{Array2, ArrayView2, Ix2};

/// `Lin(D→d) → BN → SELU → Lin(d→d)`.
#[derive(Clone, Debug)]
pub struct ProjectionHead<T: Float> {
    pub lin1: Linear,
    pub bn: BatchNorm1d<T>,
    pub lin2: Linear,
}

impl<T: Float> ProjectionHead<T> {
    /// Register the head's parameters under `prefix` (normally `"proj"`).
    pub fn new(
        store: &mut ParamStore<T>,
        prefix: &str,
        d_in: usize,
        d: usize,
        rng: &mut Stream,
    ) -> Self {
        let lin1 = Linear::new(store, &format!("{prefix}.lin1"), d_in, d, true, rng);
        let bn = BatchNorm1d::new(store, &format!("{prefix}.bn"), d);
        let lin2 = Linear::new(store, &format!("{prefix}.lin2"), d, d, true, rng);
        ProjectionHead { lin1, bn, lin2 }
    }

    /// Train mode (batch statistics; running statistics updated): `h: [B, D]` → `z: [B, d]`.
    pub fn forward_train(&mut self, t: &mut Tape<T>, p: &Bound, h: Var) -> Result<Var> {
        let a = self.lin1.forward(t, p, h);
        let b = self.bn.forward_train(t, p, a)?;
        let s = t.selu(b);
        Ok(self.lin2.forward(t, p, s))
    }

    /// Eval mode (running statistics as constants); rows are independent of each other.
    pub fn forward_eval(&self, t: &mut Tape<T>, p: &Bound, h: Var) -> Var {
        let a = self.lin1.forward(t, p, h);
        let b = self.bn.forward_eval(t, p, a);
        let s = t.selu(b);
        self.lin2.forward(t, p, s)
    }

    /// Eval-mode `z` for all rows of `h` without recording a tape.
    pub fn embed(&self, store: &ParamStore<T>, h: ArrayView2<T>) -> Array2<T> {
        let mut t = Tape::no_grad();
        let p = store.bind(&mut t);
        let hv = t.constant(h.to_owned().into_dyn());
        let z = self.forward_eval(&mut t, &p, hv);
        t.value(z)
            .clone()
            .into_dimensionality::<Ix2>()
            .expect("[N, d]")
    }

    /// Set the BN running statistics to the exact mean and unbiased variance of the BN input
    /// over the whole dataset `h_all: [N, D]` (method §5 calibration).
    pub fn calibrate(&mut self, store: &ParamStore<T>, h_all: ArrayView2<T>) -> Result<()> {
        let mut t = Tape::no_grad();
        let p = store.bind(&mut t);
        let hv = t.constant(h_all.to_owned().into_dyn());
        let a = self.lin1.forward(&mut t, &p, hv);
        let a2 = t
            .value(a)
            .view()
            .into_dimensionality::<Ix2>()
            .expect("[N, d]")
            .to_owned();
        self.bn.calibrate(a2.view())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autodiff::gradcheck::assert_grad;
    use crate::rng;
    use ndarray::{ArrayD, IxDyn};
    use rand::Rng;

    fn setup() -> (ParamStore<f64>, ProjectionHead<f64>, ArrayD<f64>) {
        let mut store = ParamStore::new();
        let mut r = rng::stream(5, "proj.init");
        let mut head = ProjectionHead::new(&mut store, "proj", 4, 3, &mut r);
        let mut hr = rng::stream(5, "proj.h");
        let h = ArrayD::from_shape_simple_fn(IxDyn(&[6, 4]), || hr.random_range(-1.0..1.0));
        // Non-trivial running statistics for eval mode.
        head.bn.running_mean = ndarray::arr1(&[0.1, -0.2, 0.05]);
        head.bn.running_var = ndarray::arr1(&[0.8, 1.3, 0.6]);
        (store, head, h)
    }

    /// Parameters in registration order as gradcheck inputs.
    fn inputs(store: &ParamStore<f64>, h: &ArrayD<f64>) -> Vec<ArrayD<f64>> {
        let mut v = vec![h.clone()];
        v.extend(store.ids().map(|id| store.get(id).clone()));
        v
    }

    fn bound_from(vars: &[Var]) -> Bound {
        Bound {
            vars: vars[1..].to_vec(),
        }
    }

    #[test]
    fn grad_projection_head_train_and_eval() {
        let (store, head, h) = setup();
        let inp = inputs(&store, &h);
        assert_grad("projection train", &inp, |t, v| {
            let mut hd = head.clone();
            hd.forward_train(t, &bound_from(v), v[0]).unwrap()
        });
        assert_grad("projection eval", &inp, |t, v| {
            head.forward_eval(t, &bound_from(v), v[0])
        });
    }

    #[test]
    fn eval_embedding_is_independent_of_chunking_and_calibration_is_exact() {
        let (mut store, mut head, h) = setup();
        let h2 = h.clone().into_dimensionality::<Ix2>().unwrap();
        head.calibrate(&store, h2.view()).unwrap();
        let all = head.embed(&store, h2.view());
        let top = head.embed(&store, h2.slice(ndarray::s![..2, ..]));
        let rest = head.embed(&store, h2.slice(ndarray::s![2.., ..]));
        assert_eq!(all.slice(ndarray::s![..2, ..]), top);
        assert_eq!(all.slice(ndarray::s![2.., ..]), rest);
        // After calibration, eval-mode BN equals train-mode BN up to the biased/unbiased variance
        // factor n/(n−1): check the BN input statistics directly.
        let mut t = Tape::no_grad();
        let p = store.bind(&mut t);
        let hv = t.constant(h.clone());
        let a = head.lin1.forward(&mut t, &p, hv);
        let a = t.value(a).clone().into_dimensionality::<Ix2>().unwrap();
        let n = a.nrows() as f64;
        for j in 0..3 {
            let m = a.column(j).sum() / n;
            let v = a.column(j).iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0);
            assert!((head.bn.running_mean[j] - m).abs() < 1e-15);
            assert!((head.bn.running_var[j] - v).abs() < 1e-14);
        }
        let _ = &mut store;
    }
}
