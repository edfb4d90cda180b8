//! The MAP M-step of the mixture (method §6.7), division-free and parallel over components, and the
//! hard initial M-step from a partition (method §6.5 step 2).

use super::{NU_INIT, NU_MAX, NU_MIN, Smm, SmmPrior, component_major};
use crate::error::{DarlcError, Result};
use crate::float::Float;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use rayon::prelude::*;

impl Smm {
    /// MAP M-step (§6.7), division-free, from responsibilities `r [N, K]` and weights `w [N, K]`
    /// (`None` = all 1). Updates π, μ, Σ (symmetrised) and the Cholesky factors; ν is untouched.
    /// Returns `N_k`.
    pub fn mstep(
        &mut self,
        z: ArrayView2<f64>,
        r: ArrayView2<f64>,
        w: Option<ArrayView2<f64>>,
        prior: &SmmPrior,
    ) -> Result<Array1<f64>> {
        self.check_z(z)?;
        let (n, d) = z.dim();
        let k = self.k();
        if r.dim() != (n, k) || w.is_some_and(|w| w.dim() != (n, k)) {
            return Err(DarlcError::Data(
                "M-step: responsibilities have the wrong shape".into(),
            ));
        }
        if prior.alpha.is_nan() || prior.alpha < 1.0 {
            return Err(DarlcError::param(
                "smm.alpha",
                format!(
                    "the Dirichlet concentration must be ≥ 1, got {}",
                    prior.alpha
                ),
            ));
        }
        let zs = z.as_standard_layout();
        // Component-major copies [K, N] so that each component reads contiguous memory.
        let rt = component_major(r);
        let wt = w.map(component_major);
        let zsl = zs.as_slice().expect("standard layout");
        let updates: Vec<(f64, Array1<f64>, Array2<f64>)> = (0..k)
            .into_par_iter()
            .map(|comp| {
                let rk = rt.row(comp);
                let wk = wt.as_ref().map(|w| w.row(comp));
                mstep_component(
                    zsl,
                    d,
                    rk.as_slice().expect("row"),
                    wk.as_ref().map(|w| w.as_slice().expect("row")),
                    prior,
                )
            })
            .collect();
        let denom = n as f64 + k as f64 * (prior.alpha - 1.0);
        let mut nk = Array1::<f64>::zeros(k);
        for (comp, (nkc, mu, sigma)) in updates.into_iter().enumerate() {
            nk[comp] = nkc;
            self.pi[comp] = (nkc + prior.alpha - 1.0) / denom;
            self.mu.row_mut(comp).assign(&mu);
            self.sigma.index_axis_mut(Axis(0), comp).assign(&sigma);
        }
        self.refactor()?;
        Ok(nk)
    }

    /// Initial mixture from a hard partition (§6.5 step 2): the M-step with `r_ik = 1[l_i = k]`,
    /// `w_ik = 1`, `ν_k = 3` (∞ when Gaussian).
    pub fn from_partition(
        z: ArrayView2<f64>,
        labels: &[usize],
        k: usize,
        prior: &SmmPrior,
        gaussian: bool,
    ) -> Result<Self> {
        Self::from_partition_nu(z, labels, k, prior, gaussian, NU_INIT)
    }

    /// [`Smm::from_partition`] with every `ν_k = nu_init` (`module2.nu_init`, §6.5).
    pub fn from_partition_nu(
        z: ArrayView2<f64>,
        labels: &[usize],
        k: usize,
        prior: &SmmPrior,
        gaussian: bool,
        nu_init: f64,
    ) -> Result<Self> {
        if !(NU_MIN..=NU_MAX).contains(&nu_init) {
            return Err(DarlcError::param(
                "module2.nu_init",
                format!("must lie in the ν bounds [{NU_MIN}, {NU_MAX}]; got {nu_init}"),
            ));
        }
        let (n, d) = z.dim();
        if labels.len() != n {
            return Err(DarlcError::Data(
                "labels and embeddings differ in length".into(),
            ));
        }
        let mut r = Array2::<f64>::zeros((n, k));
        for (i, &l) in labels.iter().enumerate() {
            if l >= k {
                return Err(DarlcError::Data(format!("label {l} of row {i} ≥ K = {k}")));
            }
            r[[i, l]] = 1.0;
        }
        let mut sigma = Array3::<f64>::zeros((k, d, d));
        for c in 0..k {
            for j in 0..d {
                sigma[[c, j, j]] = 1.0;
            }
        }
        let mut smm = Smm::new(
            Array1::from_elem(k, 1.0 / k as f64),
            Array2::zeros((k, d)),
            sigma,
            Array1::from_elem(k, nu_init),
            gaussian,
        )?;
        smm.mstep(z, r.view(), None, prior)?;
        Ok(smm)
    }
}

/// Rows per block of the M-step scatter (the block's centred rows stay in L2).
const SCATTER_ROWS: usize = 512;

/// One component's M-step: `(N_k, μ_k, Σ_k)` (§6.7), sums over rows in index order; the scatter
/// `Σ_i r w (z_i − μ)(z_i − μ)ᵀ` runs over the rows with `r·w ≠ 0` in blocks of
/// [`SCATTER_ROWS`] (one GEMM per block, added to the scatter block by block, in row order).
/// `r`, `w` are this component's columns (`[N]`).
fn mstep_component(
    z: &[f64],
    d: usize,
    r: &[f64],
    w: Option<&[f64]>,
    prior: &SmmPrior,
) -> (f64, Array1<f64>, Array2<f64>) {
    let n = r.len();
    let mut nk = 0.0;
    let mut wk = 0.0;
    let mut s = vec![0.0; d];
    let mut rows = Vec::new();
    let mut rw = Vec::new();
    for i in 0..n {
        let ri = r[i];
        let v = ri * w.map_or(1.0, |w| w[i]);
        nk += ri;
        wk += v;
        if v != 0.0 {
            rows.push(i);
            rw.push(v);
            for l in 0..d {
                s[l] += v * z[i * d + l];
            }
        }
    }
    let mu = Array1::from_shape_fn(d, |l| {
        (s[l] + prior.kappa0 * prior.m0[l]) / (wk + prior.kappa0)
    });
    let mut scatter = Array2::<f64>::zeros((d, d));
    let mut a = vec![0.0; SCATTER_ROWS.min(rows.len()) * d];
    let mut b = vec![0.0; a.len()];
    for (blk, (rows, rw)) in rows
        .chunks(SCATTER_ROWS)
        .zip(rw.chunks(SCATTER_ROWS))
        .enumerate()
    {
        let m = rows.len();
        for (p, (&i, &v)) in rows.iter().zip(rw).enumerate() {
            for l in 0..d {
                let c = z[i * d + l] - mu[l];
                a[p * d + l] = c;
                b[p * d + l] = v * c;
            }
        }
        let beta = if blk == 0 { 0.0 } else { 1.0 };
        // SAFETY: a, b hold m×d row-major values; bᵀ is d×m with strides (1, d); scatter is d×d
        // row-major and does not alias a or b.
        unsafe {
            f64::gemm(
                d,
                m,
                d,
                1.0,
                b.as_ptr(),
                1,
                d as isize,
                a.as_ptr(),
                d as isize,
                1,
                beta,
                scatter.as_mut_ptr(),
                d as isize,
                1,
            );
        }
    }
    let dm = &mu - &prior.m0;
    let denom = prior.nu0 + nk + d as f64 + 2.0;
    let mut sigma = Array2::from_shape_fn((d, d), |(i, j)| {
        (prior.s0[[i, j]] + scatter[[i, j]] + prior.kappa0 * dm[i] * dm[j]) / denom
    });
    for i in 0..d {
        for j in 0..i {
            let v = 0.5 * (sigma[[i, j]] + sigma[[j, i]]);
            sigma[[i, j]] = v;
            sigma[[j, i]] = v;
        }
    }
    (nk, mu, sigma)
}
