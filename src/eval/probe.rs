//! The gene-pair interaction probe ([P] §4.3.1): an MLP classifier that predicts from the
//! embeddings of two genes whether they interact, scored by stratified k-fold accuracy (and
//! AUROC). The paper takes its ground truth from Gene Ontology following Du et al. (2019,
//! Gene2vec); darlc ships no such list, so the user supplies the pairs.
//!
//! **Pairs file.** CSV with a header naming the columns `gene_a`, `gene_b` and `label` (any
//! order, further columns ignored; gzip is decompressed). `label` is `0` or `1`. Genes are
//! looked up by name in the embeddings (id, else unique symbol: the rules of
//! [`crate::eval::input`]). A gene missing from the embeddings is an error naming the file, line
//! and gene unless `skip_missing` is set, in which case the pair is dropped and counted. An
//! unordered pair listed twice is an error (its copies could land in different folds and leak
//! the label from training to test).
//!
//! **Pair feature (CHOICE).** `f(a, b) = [e_a ⊙ e_b, |e_a − e_b|] ∈ R^{2D}`. Both halves are
//! symmetric under swapping `a` and `b`, bit for bit in floating point (`x·y = y·x` and
//! `|x − y| = |y − x|` are exact in IEEE arithmetic), so `(a, b)` and `(b, a)` get the same
//! prediction. Features are standardised (`(f − mean) / std`, population std; a constant
//! feature gets std 1) with statistics of the training fold only.
//!
//! **Classifier.** `logit = ReLU(f W₁ + b₁) W₂ + b₂`, one hidden layer of `hidden` units,
//! Xavier-uniform weights and zero biases ([`Linear`]), trained in f64 (the data are small and
//! f64 lets the gradient check run on the training code itself) with [`Adam`] (PyTorch
//! defaults, no weight decay) on the mean binary cross-entropy with logits, computed stably as
//! `max(x, 0) − x·y + log1p(exp(−|x|))` from tape ops (`|x| = relu(x) + relu(−x)`). Mini-batches
//! of `batch_size` pairs (0 = full batch; default 200, capped at the training-fold size, as
//! scikit-learn's `MLPClassifier`) in an order reshuffled every epoch. Prediction: label 1 when
//! the logit is > 0; the logit is the AUROC score.
//!
//! **Folds.** Stratified and deterministic: the pairs of class 0, then those of class 1, are each
//! shuffled (Fisher–Yates) with one stream `rng::stream(seed, "probe.folds")` and dealt
//! round-robin to folds `0, 1, …, k−1, 0, …`, the count continuing from class 0 into class 1, so
//! fold sizes differ by at most one overall and within each class. Every class needs at least
//! `k` pairs. Fold `i` uses the streams `probe.init.fold{i}` (weights) and `probe.batches.fold{i}`
//! (batch order).
//!
//! **Summary.** Per fold accuracy and AUROC (Mann–Whitney, tied scores get average ranks);
//! mean and sample standard deviation (n − 1) over folds.

use crate::autodiff::{Tape, Var};
use crate::error::{DarlcError, Result};
use crate::eval::input::IdTable;
use crate::nn::{Adam, Bound, Linear, ParamId, ParamStore};
use crate::rng::{self, Stream};
use ndarray::{Array2, ArrayView2, Axis};
use rand::Rng;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One labelled gene pair: rows `a`, `b` of the embedding matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub label: bool,
}

/// The pairs read from a file.
#[derive(Clone, Debug)]
pub struct PairSet {
    pub pairs: Vec<Pair>,
    /// Pairs dropped because a gene is not in the embeddings (only with `skip_missing`).
    pub skipped: usize,
}

/// The file's text through the one opener of every text input ([`crate::io::source::open_text`]:
/// gzip recognised by its magic bytes, a leading byte-order mark skipped).
fn open_text(path: &Path) -> Result<Box<dyn Read>> {
    Ok(Box::new(crate::io::source::open_text(path)?))
}

fn csv_err(path: &Path, e: csv::Error) -> DarlcError {
    let line = e.position().map(|p| p.line() as usize);
    DarlcError::format(path, line, format!("cannot read CSV: {e}"))
}

/// Read a pairs file (module doc) against the row names of `ids`; `emb_path` names the
/// embeddings in the missing-gene error.
pub fn read_pairs(
    path: &Path,
    ids: &IdTable,
    emb_path: &Path,
    skip_missing: bool,
) -> Result<PairSet> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(open_text(path)?);
    let header = rd.headers().map_err(|e| csv_err(path, e))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let (ca, cb, cl) = match (col("gene_a"), col("gene_b"), col("label")) {
        (Some(a), Some(b), Some(l)) => (a, b, l),
        _ => {
            return Err(DarlcError::format(
                path,
                Some(1),
                format!(
                    "the header must name the columns gene_a, gene_b, label (found: {})",
                    header.iter().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    };
    let mut pairs = Vec::new();
    let mut skipped = 0;
    let mut seen: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| csv_err(path, e))?;
        let line = rec.position().map(|p| p.line() as usize);
        let field = |c: usize, name: &str| {
            rec.get(c)
                .ok_or_else(|| DarlcError::format(path, line, format!("missing column `{name}`")))
        };
        let (ga, gb, lab) = (
            field(ca, "gene_a")?,
            field(cb, "gene_b")?,
            field(cl, "label")?,
        );
        let label = match lab {
            "0" => false,
            "1" => true,
            other => {
                return Err(DarlcError::format(
                    path,
                    line,
                    format!("label `{other}` is not 0 or 1"),
                ));
            }
        };
        let (ia, ib) = (ids.lookup(ga), ids.lookup(gb));
        let (a, b) = match (ia, ib) {
            (Some(a), Some(b)) => (a, b),
            _ if skip_missing => {
                skipped += 1;
                continue;
            }
            (None, _) | (_, None) => {
                let (gene, column) = if ia.is_none() {
                    (ga, "gene_a")
                } else {
                    (gb, "gene_b")
                };
                return Err(DarlcError::format(
                    path,
                    line,
                    format!(
                        "gene `{gene}` ({column}) is not in the embeddings {} \
                         (use --skip-missing to drop such pairs)",
                        emb_path.display()
                    ),
                ));
            }
        };
        let key = (a.min(b), a.max(b));
        if let Some(first) = seen.insert(key, line.unwrap_or(0)) {
            return Err(DarlcError::format(
                path,
                line,
                format!(
                    "the pair ({ga}, {gb}) is also on line {first}; list each unordered pair \
                     once (copies could fall into different folds)"
                ),
            ));
        }
        pairs.push(Pair { a, b, label });
    }
    Ok(PairSet { pairs, skipped })
}

/// The symmetric pair feature `[e_a ⊙ e_b, |e_a − e_b|]` (module doc), one row per pair:
/// `[n_pairs, 2D]` for embeddings `x: [N, D]`.
pub fn pair_features(x: ArrayView2<f64>, pairs: &[Pair]) -> Array2<f64> {
    let d = x.ncols();
    let mut f = Array2::zeros((pairs.len(), 2 * d));
    for (r, p) in pairs.iter().enumerate() {
        let (ea, eb) = (x.row(p.a), x.row(p.b));
        for j in 0..d {
            f[[r, j]] = ea[j] * eb[j];
            f[[r, d + j]] = (ea[j] - eb[j]).abs();
        }
    }
    f
}

/// Fisher–Yates shuffle drawing from `r` (last position first).
fn shuffle(v: &mut [usize], r: &mut Stream) {
    for i in (1..v.len()).rev() {
        let j = r.random_range(0..=i);
        v.swap(i, j);
    }
}

/// Stratified fold of every item (module doc "Folds"): `fold[i] ∈ 0..k`.
pub fn stratified_folds(labels: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut r = rng::stream(seed, "probe.folds");
    let mut fold = vec![0; labels.len()];
    let mut next = 0;
    for class in [false, true] {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        shuffle(&mut idx, &mut r);
        for i in idx {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// Per-feature standardisation fitted on training rows.
#[derive(Clone, Debug)]
pub struct Standardizer {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Standardizer {
    /// Column means and population standard deviations of `x` (std 1 for a constant column).
    pub fn fit(x: ArrayView2<f64>) -> Self {
        let n = x.nrows().max(1) as f64;
        let mut mean = vec![0.0; x.ncols()];
        let mut std = vec![0.0; x.ncols()];
        for (j, c) in x.axis_iter(Axis(1)).enumerate() {
            let m = c.iter().sum::<f64>() / n;
            let v = c.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n;
            mean[j] = m;
            std[j] = if v > 0.0 { v.sqrt() } else { 1.0 };
        }
        Standardizer { mean, std }
    }

    /// `(x − mean) / std`, column by column.
    pub fn apply(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let mut out = x.to_owned();
        for (j, mut c) in out.axis_iter_mut(Axis(1)).enumerate() {
            let (m, s) = (self.mean[j], self.std[j]);
            c.mapv_inplace(|v| (v - m) / s);
        }
        out
    }
}

/// The probe's classifier: `logit = ReLU(x W₁ + b₁) W₂ + b₂` (module doc).
#[derive(Clone, Debug)]
pub struct ProbeMlp {
    pub store: ParamStore<f64>,
    pub l1: Linear,
    pub l2: Linear,
}

impl ProbeMlp {
    /// Parameters `probe.W_1 [d_in, hidden]`, `probe.b_1`, `probe.W_2 [hidden, 1]`, `probe.b_2`
    /// (in that order), Xavier-uniform weights from `r`, zero biases.
    pub fn new(d_in: usize, hidden: usize, r: &mut Stream) -> Self {
        let mut store = ParamStore::new();
        let l1 = Linear::with_names(&mut store, "probe.W_1", Some("probe.b_1"), d_in, hidden, r);
        let l2 = Linear::with_names(&mut store, "probe.W_2", Some("probe.b_2"), hidden, 1, r);
        ProbeMlp { store, l1, l2 }
    }

    /// Logits `[n, 1]` of the rows of `x: [n, d_in]`, with parameters bound in `p`.
    pub fn forward(&self, t: &mut Tape<f64>, p: &Bound, x: Var) -> Var {
        let h = self.l1.forward(t, p, x);
        let h = t.relu(h);
        self.l2.forward(t, p, h)
    }

    /// Logits of `x` (no gradient recorded).
    pub fn logits(&self, x: &Array2<f64>) -> Vec<f64> {
        let mut t = Tape::no_grad();
        let p = self.store.bind(&mut t);
        let xv = t.constant(x.clone().into_dyn());
        let out = self.forward(&mut t, &p, xv);
        t.value(out).iter().copied().collect()
    }
}

/// Mean binary cross-entropy with logits, `mean(max(x, 0) − x·y + log1p(exp(−|x|)))`, for
/// logits `x` and targets `y` of the same shape; `|x| = relu(x) + relu(−x)`.
pub fn bce_with_logits(t: &mut Tape<f64>, x: Var, y: Var) -> Var {
    let pos = t.relu(x);
    let nx = t.neg(x);
    let neg = t.relu(nx);
    let abs = t.add(pos, neg);
    let m = t.neg(abs);
    let e = t.exp(m);
    let soft = t.log1p(e);
    let xy = t.mul(x, y);
    let a = t.sub(pos, xy);
    let l = t.add(a, soft);
    t.mean(l)
}

/// AUROC of `scores` against `labels` by the Mann–Whitney statistic with average ranks for tied
/// scores; `None` when a class is absent or a score is NaN.
pub fn auroc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let n1 = labels.iter().filter(|&&l| l).count();
    let n0 = labels.len() - n1;
    if n1 == 0 || n0 == 0 || scores.iter().any(|s| s.is_nan()) {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    let mut rank_sum_pos = 0.0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        // Ranks start+1 ..= end share their average.
        let avg = (start + 1 + end) as f64 / 2.0;
        let pos_in_tie = order[start..end].iter().filter(|&&i| labels[i]).count();
        rank_sum_pos += avg * pos_in_tie as f64;
        start = end;
    }
    let (n1, n0) = (n1 as f64, n0 as f64);
    Some((rank_sum_pos - n1 * (n1 + 1.0) / 2.0) / (n1 * n0))
}

/// Settings of the probe.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeParams {
    pub folds: usize,
    pub hidden: usize,
    pub epochs: usize,
    pub lr: f64,
    /// Pairs per mini-batch (0 = full batch); capped at the training-fold size.
    pub batch_size: usize,
    pub seed: u64,
}

impl Default for ProbeParams {
    fn default() -> Self {
        ProbeParams {
            folds: 5,
            hidden: 64,
            epochs: 200,
            lr: 1e-3,
            batch_size: 200,
            seed: 0,
        }
    }
}

impl ProbeParams {
    fn validate(&self) -> Result<()> {
        if self.folds < 2 {
            return Err(DarlcError::param("folds", "needs at least 2 folds"));
        }
        if self.hidden == 0 {
            return Err(DarlcError::param("hidden", "needs at least 1 hidden unit"));
        }
        if self.epochs == 0 {
            return Err(DarlcError::param("epochs", "needs at least 1 epoch"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(DarlcError::param("lr", "must be a positive number"));
        }
        Ok(())
    }
}

/// The result of one fold.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FoldResult {
    pub fold: usize,
    pub n_train: usize,
    pub n_test: usize,
    pub accuracy: f64,
    pub auroc: Option<f64>,
    /// Mean training loss over the last epoch's batches.
    pub train_loss: f64,
}

/// The probe's result: per-fold figures and their mean ± sample std.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeResult {
    pub n_pairs: usize,
    pub n_positive: usize,
    pub n_negative: usize,
    pub feature: String,
    /// Width of the pair feature (2D).
    pub feature_dims: usize,
    pub params: ProbeParams,
    pub folds: Vec<FoldResult>,
    pub accuracy_mean: f64,
    pub accuracy_std: f64,
    pub auroc_mean: Option<f64>,
    pub auroc_std: Option<f64>,
}

/// Mean and sample standard deviation (n − 1; 0 for one value).
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

/// Train the probe's MLP on standardised features `x` with labels `y` (fold `fold` names the
/// random streams); returns the model and the mean loss of the last epoch.
pub fn train_mlp(
    x: &Array2<f64>,
    y: &[bool],
    params: &ProbeParams,
    fold: usize,
) -> Result<(ProbeMlp, f64)> {
    let mut init = rng::stream(params.seed, &format!("probe.init.fold{fold}"));
    let mut order_rng = rng::stream(params.seed, &format!("probe.batches.fold{fold}"));
    let mut mlp = ProbeMlp::new(x.ncols(), params.hidden, &mut init);
    let ids: Vec<ParamId> = mlp.store.ids().collect();
    let mut adam = Adam::<f64>::new(params.lr);
    let n = x.nrows();
    let bs = match params.batch_size {
        0 => n,
        b => b.min(n),
    }
    .max(1);
    let mut order: Vec<usize> = (0..n).collect();
    let mut last = f64::NAN;
    for _ in 0..params.epochs {
        shuffle(&mut order, &mut order_rng);
        let (mut total, mut batches) = (0.0, 0);
        for batch in order.chunks(bs) {
            let xb = x.select(Axis(0), batch);
            let yb = Array2::from_shape_fn(
                (batch.len(), 1),
                |(i, _)| {
                    if y[batch[i]] { 1.0 } else { 0.0 }
                },
            );
            let mut t = Tape::new();
            let p = mlp.store.bind(&mut t);
            let xv = t.constant(xb.into_dyn());
            let yv = t.constant(yb.into_dyn());
            let logits = mlp.forward(&mut t, &p, xv);
            let loss = bce_with_logits(&mut t, logits, yv);
            let lv = t.scalar(loss);
            if !lv.is_finite() {
                return Err(DarlcError::Numerical(format!(
                    "probe fold {fold}: training loss is {lv}; lower --lr"
                )));
            }
            total += lv;
            batches += 1;
            let mut g = t.backward(loss);
            let grads = p.take_grads(&mut g, &mlp.store, &ids);
            adam.step(&mut mlp.store, &ids, &grads);
        }
        last = total / batches as f64;
    }
    Ok((mlp, last))
}

/// Run the probe: stratified k-fold over `pairs` of the embeddings `x: [N, D]` (module doc).
pub fn run_probe(x: ArrayView2<f64>, pairs: &[Pair], params: &ProbeParams) -> Result<ProbeResult> {
    params.validate()?;
    let labels: Vec<bool> = pairs.iter().map(|p| p.label).collect();
    let n_pos = labels.iter().filter(|&&l| l).count();
    let n_neg = labels.len() - n_pos;
    if n_pos < params.folds || n_neg < params.folds {
        return Err(DarlcError::Data(format!(
            "the probe needs at least {} pairs of each label for {} folds; have {n_pos} with \
             label 1 and {n_neg} with label 0",
            params.folds, params.folds
        )));
    }
    if let Some(bad) = x.iter().find(|v| !v.is_finite()) {
        return Err(DarlcError::Data(format!(
            "the embeddings contain a non-finite value ({bad})"
        )));
    }
    let feats = pair_features(x, pairs);
    let fold_of = stratified_folds(&labels, params.folds, params.seed);
    let mut folds = Vec::with_capacity(params.folds);
    for k in 0..params.folds {
        let train: Vec<usize> = (0..pairs.len()).filter(|&i| fold_of[i] != k).collect();
        let test: Vec<usize> = (0..pairs.len()).filter(|&i| fold_of[i] == k).collect();
        let ftrain = feats.select(Axis(0), &train);
        let scaler = Standardizer::fit(ftrain.view());
        let xtrain = scaler.apply(ftrain.view());
        let xtest = scaler.apply(feats.select(Axis(0), &test).view());
        let ytrain: Vec<bool> = train.iter().map(|&i| labels[i]).collect();
        let ytest: Vec<bool> = test.iter().map(|&i| labels[i]).collect();
        let (mlp, train_loss) = train_mlp(&xtrain, &ytrain, params, k)?;
        let scores = mlp.logits(&xtest);
        let correct = scores
            .iter()
            .zip(&ytest)
            .filter(|&(&s, &y)| (s > 0.0) == y)
            .count();
        folds.push(FoldResult {
            fold: k,
            n_train: train.len(),
            n_test: test.len(),
            accuracy: correct as f64 / test.len() as f64,
            auroc: auroc(&scores, &ytest),
            train_loss,
        });
    }
    let acc: Vec<f64> = folds.iter().map(|f| f.accuracy).collect();
    let (accuracy_mean, accuracy_std) = mean_std(&acc);
    let aucs: Option<Vec<f64>> = folds.iter().map(|f| f.auroc).collect();
    let (auroc_mean, auroc_std) = match aucs {
        Some(a) => {
            let (m, s) = mean_std(&a);
            (Some(m), Some(s))
        }
        None => (None, None),
    };
    Ok(ProbeResult {
        n_pairs: pairs.len(),
        n_positive: n_pos,
        n_negative: n_neg,
        feature: "[e_a * e_b, |e_a - e_b|]".into(),
        feature_dims: feats.ncols(),
        params: params.clone(),
        folds,
        accuracy_mean,
        accuracy_std,
        auroc_mean,
        auroc_std,
    })
}

/// The probe's table: one row per fold, then mean ± sample std.
pub fn format_probe(r: &ProbeResult) -> String {
    let fmt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "{} pairs ({} with label 1, {} with label 0); feature {} ({} dims); MLP, {} hidden, \
         {} epochs, batch {}, lr {}, seed {}\n",
        r.n_pairs,
        r.n_positive,
        r.n_negative,
        r.feature,
        r.feature_dims,
        r.params.hidden,
        r.params.epochs,
        r.params.batch_size,
        r.params.lr,
        r.params.seed
    );
    s.push_str(&format!(
        "{:>5} {:>7} {:>6} {:>9} {:>7}\n",
        "fold", "train", "test", "accuracy", "AUROC"
    ));
    for f in &r.folds {
        s.push_str(&format!(
            "{:>5} {:>7} {:>6} {:>9.4} {:>7}\n",
            f.fold,
            f.n_train,
            f.n_test,
            f.accuracy,
            fmt(f.auroc)
        ));
    }
    s.push_str(&format!(
        "mean ± std (sample, {} folds): accuracy {:.4} ± {:.4}, AUROC {} ± {}\n",
        r.folds.len(),
        r.accuracy_mean,
        r.accuracy_std,
        fmt(r.auroc_mean),
        fmt(r.auroc_std)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn mean_std_is_the_sample_std() {
        // [1, 2, 3, 4]: mean 2.5, Σ(x−m)² = 5, sample variance 5/3 (hand computation).
        let (m, s) = mean_std(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(m, 2.5);
        assert!((s - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn standardizer_uses_training_statistics_and_keeps_constant_columns_finite() {
        let train = array![[1.0, 5.0], [3.0, 5.0]];
        let s = Standardizer::fit(train.view());
        // Column 0: mean 2, population std 1; column 1 constant → std 1 (hand computation).
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.std, vec![1.0, 1.0]);
        assert_eq!(s.apply(array![[4.0, 7.0]].view()), array![[2.0, 2.0]]);
    }

    #[test]
    fn bce_matches_the_naive_formula() {
        // −[y ln σ(x) + (1−y) ln(1−σ(x))] for moderate x, computed directly.
        let xs = [-3.0, -0.5, 0.7, 2.5];
        let ys = [1.0, 0.0, 1.0, 0.0];
        let mut t = Tape::no_grad();
        let x = t.constant(ndarray::Array1::from(xs.to_vec()).into_dyn());
        let y = t.constant(ndarray::Array1::from(ys.to_vec()).into_dyn());
        let l = bce_with_logits(&mut t, x, y);
        let naive: f64 = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let s = 1.0 / (1.0 + (-x).exp());
                -(y * s.ln() + (1.0 - y) * (1.0 - s).ln())
            })
            .sum::<f64>()
            / 4.0;
        assert!((t.scalar(l) - naive).abs() < 1e-12);
        // Stable for large logits: a confident correct logit of 800 costs ~0, a wrong one ~800.
        let mut t = Tape::no_grad();
        let x = t.constant(array![800.0, -800.0].into_dyn());
        let y = t.constant(array![1.0, 1.0].into_dyn());
        let l = bce_with_logits(&mut t, x, y);
        assert!((t.scalar(l) - 400.0).abs() < 1e-9);
    }
}
