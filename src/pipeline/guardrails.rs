//! Warnings that tell a user when a DARLC run is unlikely to have learnt anything, each with its
//! remedy (issue 23): a section too small for the method, a phase with too few optimiser steps,
//! a contrastive loss that ends at its chance level, and clusterings far from K.
//!
//! Each function is pure (it returns the warning text or `None`); `darlc run` prints them to
//! stderr and lists them in `run.json` under `warnings`. None of them stops a run: the result is
//! still a valid fit of what the configuration asked for.

use super::schedule::Schedule;
use crate::config::Config;

/// Fewest images for which `darlc run --method darlc` does not warn. A K-component mixture in
/// d = 32 dimensions and a contrastive batch need hundreds of images; on osmFISH's 33 genes every
/// setting put all genes in one cluster (issue 23).
pub const MIN_IMAGES_DARLC: usize = 100;

/// Fewest joint batch-level steps without a warning: fewer than the shortest joint phase that
/// helped in our measurements (160 steps on the 488-gene DLPFC section of issue 23).
pub const MIN_JOINT_STEPS: usize = 100;

/// Share of the chance level ln(2B − 1) above which the final contrastive loss counts as "at
/// chance". With τ = 0.5 the loss of a useful embedding stays high (cosine logits lie in
/// [−2, 2], and genes of one pattern are each other's negatives). Measured with the recommended
/// preset (B 32, ln 63 = 4.143): on DLPFC 151673 the warm-up's epoch means fell from 4.16 to
/// 4.00 (0.964 of chance) by step 400 and then rose again, to 4.06 (0.980) at step 1,040; on the
/// embedded MOB section they ended at 4.11 (0.99), rising over the 4 epochs. So the threshold
/// separates these two, but it is set from two runs, not calibrated.
pub const CHANCE_SHARE: f64 = 0.98;

const REMEDY_STEPS: &str = "run the recommended preset (`darlc run` without `--preset`), or give \
     a target in optimiser steps, e.g. --config with {\"module1\": {\"warmup_steps\": 1600, \
     \"batch\": \"auto\"}} (README, \"Schedules in optimiser steps\")";

/// A section of fewer than [`MIN_IMAGES_DARLC`] images.
pub fn small_section_warning(n: usize) -> Option<String> {
    (n < MIN_IMAGES_DARLC).then(|| {
        format!(
            "warning: {n} images (genes) are too few for DARLC, which needs hundreds: its \
             contrastive warm-up and a K-component mixture in 32 dimensions have little to learn \
             from and tend to put every gene in one cluster; use --method gmm-pca (or \
             --method kmeans) for a section this small"
        )
    })
}

/// Warm-up with fewer optimiser steps than the EMA target's time constant `1 / (1 − momentum)`
/// (1,000 steps at the method's 0.999), or a joint phase with fewer than [`MIN_JOINT_STEPS`] batch
/// steps. Phases that do not run (0 epochs, or the `w/o SMM` ablation's joint phase) do not warn.
pub fn few_steps_warnings(s: &Schedule, c: &Config) -> Vec<String> {
    let mut w = Vec::new();
    let time_constant = 1.0 / (1.0 - c.module1.ema);
    let wu = &s.warmup;
    if wu.epochs > 0 && (wu.steps as f64) < time_constant {
        w.push(format!(
            "warning: the warm-up makes only {} optimiser steps ({} epochs × {} steps at B = {} on \
             {} images), fewer than the {:.0}-step time constant of the EMA target (momentum {}): \
             the encoder barely leaves its random start; {REMEDY_STEPS}",
            wu.steps,
            wu.epochs,
            wu.steps_per_epoch,
            wu.batch,
            s.images,
            time_constant,
            c.module1.ema
        ));
    }
    let j = &s.joint;
    if j.epochs > 0 && !c.ablations.no_smm && j.steps < MIN_JOINT_STEPS {
        w.push(format!(
            "warning: the joint phase makes only {} batch-level optimiser steps ({} epochs × {} \
             steps at B = {}), fewer than {MIN_JOINT_STEPS}; {}",
            j.steps,
            j.epochs,
            j.steps_per_epoch,
            j.batch,
            REMEDY_STEPS.replace(
                "{\"module1\": {\"warmup_steps\": 1600, \"batch\": \"auto\"}}",
                "{\"module2\": {\"joint_steps\": 160}}"
            )
        ));
    }
    w
}

/// The contrastive loss's chance level for a batch of `b` images: NT-Xent over the 2B views
/// scores each view's positive against 2B − 1 candidates, so equal similarities give ln(2B − 1).
pub fn chance_level(b: usize) -> f64 {
    ((2 * b).saturating_sub(1).max(1) as f64).ln()
}

/// Most pixel products of [`pixel_reference`] (about 1 s): its batches stop at this budget.
const REFERENCE_WORK: usize = 2_000_000_000;

/// The contrastive loss (method §4.3 Eq. 10, temperature `tau`) that needs no learning: each
/// view's vector is its tissue pixels (`mask`), centred and scaled to unit length, so that the
/// similarity of two views is the Pearson correlation of their pixels. The raw images `x` stand
/// for the online side and the positive views `xs` (as the encoder gets them) for the target
/// side. The loss is the mean over batches of `b` images, consecutive slices of one permutation
/// from the stream `guardrails.pixel_reference`; batches stop after [`REFERENCE_WORK`] pixel
/// products.
///
/// The views themselves set how far below ln(2B − 1) an encoder can bring the loss. When the
/// smoothed views of different genes resemble each other, even a matcher that picks out many
/// positives scores near chance. The embedded MOB section is such a case: this reference is
/// 4.116 against ln 63 = 4.143 there, while the encoder ended at 4.11. On DLPFC 151673 the
/// reference is 3.867, and the recommended preset's encoder ended at 4.06, worse than raw pixels.
/// `None` with fewer than 2 images.
pub fn pixel_reference(
    x: ndarray::ArrayView4<f32>,
    xs: ndarray::ArrayView4<f32>,
    mask: ndarray::ArrayView2<u8>,
    b: usize,
    tau: f64,
    seed: u64,
) -> Option<f64> {
    use crate::autodiff::Tape;
    let n = x.dim().0;
    let p = x.dim().1 * mask.iter().filter(|&&m| m != 0).count();
    let b = b.min(n);
    if b < 2 || p == 0 || xs.dim() != x.dim() {
        return None;
    }
    // The batch's tissue pixels, each row centred (Eq. 10's normalisation makes it unit length).
    let centred = |imgs: ndarray::ArrayView4<f32>, idx: &[usize]| {
        let batch = imgs.select(ndarray::Axis(0), idx);
        let mut v = crate::baselines::tissue_vectors(batch.view(), mask).ok()?;
        for mut row in v.rows_mut() {
            let mean = row.sum() / p as f64;
            row -= mean;
        }
        Some(v.into_dyn())
    };
    let perm = crate::module1::warmup::permutation(
        &mut crate::rng::stream(seed, "guardrails.pixel_reference"),
        n,
    );
    let per_batch = (2 * b) * (2 * b) * p;
    let max_batches = (REFERENCE_WORK / per_batch.max(1)).max(1);
    let mut total = 0.0;
    let mut count = 0;
    for idx in perm.chunks_exact(b).take(max_batches) {
        let mut t = Tape::<f64>::new();
        let c = t.constant(centred(x, idx)?);
        let c_t = t.constant(centred(xs, idx)?);
        let loss = crate::module1::contrastive::nt_xent(&mut t, c, c_t, tau);
        total += t.scalar(loss);
        count += 1;
    }
    (count > 0).then(|| total / count as f64)
}

/// The last contrastive loss `l_cl` in `log.jsonl` (the last joint epoch, or the last warm-up
/// epoch without a joint phase) against ln(2B − 1) and against the views' [`pixel_reference`]
/// (`reference`, if computed). It warns above [`CHANCE_SHARE`] of chance, or at or above the
/// reference: the encoder has not learnt to match a gene's two views better than raw pixels do.
/// When the reference is itself near chance, the remedy is not more training: the views are hard
/// to tell apart, so the loss cannot show much. `None` without a contrastive loss (no warm-up, or
/// the `w/o CLR` ablation, whose `l_cl` is 0). `warmup_steps` is the run's, for the remedy.
pub fn chance_warning(
    log_jsonl: &str,
    batch: usize,
    warmup_steps: usize,
    reference: Option<f64>,
) -> Option<String> {
    let last = log_jsonl
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("l_cl").and_then(serde_json::Value::as_f64))
        .next_back()?;
    let chance = chance_level(batch);
    let near_chance = |l: f64| l > CHANCE_SHARE * chance;
    let no_better = reference.is_some_and(|r| last >= r);
    if !near_chance(last) && !no_better {
        return None;
    }
    let head = format!(
        "warning: the contrastive loss ends at {last:.3} (chance level ln(2B − 1) = {chance:.3}, \
         B = {batch})"
    );
    let train_longer = format!(
        "train longer (module1.warmup_steps: {warmup_steps} optimiser steps in this run) and \
         compare with --method gmm-pca"
    );
    Some(match reference {
        Some(r) if near_chance(r) => format!(
            "{head}; correlating raw pixels with the positive views scores {r:.3} on the same \
             batches: the smoothed views of different genes resemble each other, so this loss \
             stays near chance whatever the encoder learns; judge the clusters, not the loss, \
             and compare with --method gmm-pca"
        ),
        Some(r) if no_better => format!(
            "{head}, no lower than correlating raw pixels with the positive views ({r:.3} on the \
             same batches): the encoder matches a gene's two views no better than its raw pixels \
             do; {train_longer}"
        ),
        _ => format!(
            "{head}, near chance: the encoder has not learnt to tell the genes apart; \
             {train_longer}"
        ),
    })
}

/// A clustering whose largest cluster holds more than half of the images although K ≥ 4: the fit
/// uses far fewer clusters than K in effect (on DLPFC 151673 the old 3-epoch `fast` preset put
/// 135 of 256 genes in one cluster, issue 23). [`super::darlc`] separately warns when fewer than
/// half of the K clusters hold any image.
pub fn dominant_cluster_warning(labels: &[usize], k: usize) -> Option<String> {
    let n = labels.len();
    if k < 4 || n == 0 {
        return None;
    }
    let mut sizes = vec![0usize; k.max(labels.iter().max().map_or(0, |m| m + 1))];
    for &l in labels {
        sizes[l] += 1;
    }
    let (big, &size) = sizes
        .iter()
        .enumerate()
        .max_by_key(|&(i, s)| (s, std::cmp::Reverse(i)))?;
    (2 * size > n).then(|| {
        format!(
            "warning: cluster {big} holds {size} of {n} images (K = {k}): the fit uses far fewer \
             clusters than K in effect. If the warm-up or the contrastive loss warned above, train \
             longer; otherwise compare with --method gmm-pca"
        )
    })
}

/// How K was chosen, for stderr: the ST rule `round(N/30)` is the paper's default and says nothing
/// about the section, so the line says so and how to choose another.
pub fn explain_k(rule: crate::config::Clusters, k: usize, n: usize) -> Option<String> {
    match rule {
        crate::config::Clusters::St => Some(format!(
            "clusters: K = {k} = round(N/30) for N = {n} images, the paper's default for spatial \
             transcriptomics (about 30 genes per cluster, at least 2; method §10), not a property of \
             this section: choose another with --clusters K, or --clusters auto for the eigengap"
        )),
        crate::config::Clusters::Fixed(_) => Some(format!("clusters: K = {k} (given)")),
        crate::config::Clusters::Auto => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Batch;
    use crate::pipeline::schedule::resolve;

    #[test]
    fn small_sections_warn_and_point_to_gmm_pca() {
        let w = small_section_warning(33).unwrap();
        assert!(
            w.contains("33 images") && w.contains("--method gmm-pca"),
            "{w}"
        );
        assert!(small_section_warning(MIN_IMAGES_DARLC).is_none());
    }

    #[test]
    fn too_few_steps_warn_per_phase_with_the_remedy() {
        // The paper preset on the 488-gene DLPFC section of issue 23: 2 steps per epoch, 100
        // warm-up and 100 joint steps: the warm-up warns, the joint phase (exactly 100) does not.
        let paper = Config::preset("paper").unwrap();
        let w = few_steps_warnings(&resolve(488, &paper), &paper);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("only 100 optimiser steps"), "{}", w[0]);
        assert!(w[0].contains("warmup_steps"), "{}", w[0]);
        // The old 3 + 1 epoch `fast` schedule there: 6 warm-up steps and 2 joint steps.
        let mut old_fast = paper.clone();
        old_fast.module1.warmup_epochs = 3;
        old_fast.module2.joint_epochs = 1;
        let w = few_steps_warnings(&resolve(488, &old_fast), &old_fast);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[1].contains("only 2 batch-level") && w[1].contains("joint_steps"),
            "{}",
            w[1]
        );
        // The recommended preset trains enough on 488 genes and on 16,000.
        let rec = Config::preset("recommended").unwrap();
        for n in [488, 16_000] {
            assert!(few_steps_warnings(&resolve(n, &rec), &rec).is_empty());
        }
        // A phase that does not run does not warn (w/o pretraining; w/o SMM).
        let mut ablated = old_fast.clone();
        ablated.module1.warmup_epochs = 0;
        ablated.ablations.no_smm = true;
        assert!(few_steps_warnings(&resolve(488, &ablated), &ablated).is_empty());
        // The paper preset on 16,000 genes: 63 steps per epoch, 3,150 warm-up steps.
        assert!(few_steps_warnings(&resolve(16_000, &paper), &paper).is_empty());
        // 50 epochs at the auto batch there: 16 steps per epoch, 800 steps, still too few.
        let mut auto = paper;
        auto.module1.batch = Batch::Auto;
        let w = few_steps_warnings(&resolve(488, &auto), &auto);
        assert!(
            w.len() == 1 && w[0].contains("only 800 optimiser steps"),
            "{w:?}"
        );
    }

    #[test]
    fn chance_level_of_the_last_contrastive_loss() {
        // ln(2·256 − 1) = ln 511 = 6.236; ln 63 = 4.143.
        assert!((chance_level(256) - 511f64.ln()).abs() < 1e-12);
        assert!((chance_level(32) - 4.1431).abs() < 1e-4);
        // The last record with `l_cl` counts: a warm-up ending at chance followed by a joint
        // epoch well below it does not warn; the other way round does.
        let log = "{\"phase\":\"warm-up\",\"l_cl\":6.2}\n{\"phase\":\"smm-init\"}\n\
                   {\"phase\":\"joint\",\"l_cl\":3.1}\n{\"phase\":\"final\"}\n";
        assert!(chance_warning(log, 256, 100, None).is_none());
        let log = "{\"phase\":\"warm-up\",\"l_cl\":3.1}\n{\"phase\":\"joint\",\"l_cl\":6.22}\n";
        let w = chance_warning(log, 256, 100, None).unwrap();
        assert!(w.contains("6.220") && w.contains("6.236"), "{w}");
        assert!(
            w.contains("100 optimiser steps") && w.contains("--method gmm-pca"),
            "{w}"
        );
        // At B 32 the same 4.1 is at chance (0.99 of ln 63) but not at B 256.
        let log = "{\"l_cl\":4.1}\n";
        assert!(chance_warning(log, 32, 1600, None).is_some());
        assert!(chance_warning(log, 256, 1600, None).is_none());
        // No contrastive loss in the log: nothing to say.
        assert!(chance_warning("{\"phase\":\"final\"}\n", 32, 1600, None).is_none());
    }

    #[test]
    fn the_pixel_reference_decides_what_the_contrastive_warning_says() {
        // DLPFC-like: raw pixels score 3.867 on the views. An encoder below that, and far from
        // chance (0.98 · ln 63 = 4.060), passes; one at 3.95 is no better than raw pixels.
        let w = chance_warning("{\"l_cl\":3.80}\n", 32, 1600, Some(3.867));
        assert!(w.is_none(), "{w:?}");
        let w = chance_warning("{\"l_cl\":3.95}\n", 32, 1600, Some(3.867)).unwrap();
        assert!(
            w.contains("no better than its raw pixels") && w.contains("3.867"),
            "{w}"
        );
        assert!(w.contains("train longer"), "{w}");
        // MOB-like: the reference itself is near chance, so more training is not the remedy.
        let log = "{\"l_cl\":4.11}\n";
        let w = chance_warning(log, 32, 1620, Some(4.116)).unwrap();
        assert!(
            w.contains("resemble each other") && w.contains("4.116"),
            "{w}"
        );
        assert!(!w.contains("train longer"), "{w}");
    }

    /// The reference is NT-Xent over centred, unit-length pixel vectors: identical views of B
    /// orthogonal images give similarity 1/τ to the positive and 0 to the 2B − 2 others; positive
    /// views that are all one pattern, orthogonal to every image, score above chance.
    #[test]
    fn the_pixel_reference_is_nt_xent_on_pixel_correlations() {
        use ndarray::{Array4, s};
        let (b, tau) = (4usize, 0.5);
        // Image i: +1 at pixel 2i, −1 at pixel 2i + 1 of 12 (centred, orthogonal to the others).
        let mut x = Array4::<f32>::zeros((b, 1, 2, 6));
        for i in 0..b {
            let px = x.as_slice_mut().unwrap();
            px[i * 12 + 2 * i] = 1.0;
            px[i * 12 + 2 * i + 1] = -1.0;
        }
        let all = ndarray::Array2::<u8>::ones((2, 6));
        let r = pixel_reference(x.view(), x.view(), all.view(), b, tau, 0).unwrap();
        let want = -2.0 + (2f64.exp() + 6.0).ln();
        assert!((r - want).abs() < 1e-12, "{r} vs {want}");
        // Every positive view is +1 at pixel 8 and −1 at pixel 11: an image's row sees 2B − 1
        // zeros (chance, ln 7); a view's row sees its 3 twins at 1/τ and 4 images at 0.
        let mut xs = Array4::<f32>::zeros((b, 1, 2, 6));
        for i in 0..b {
            xs[[i, 0, 1, 2]] = 1.0;
            xs[[i, 0, 1, 5]] = -1.0;
        }
        let r = pixel_reference(x.view(), xs.view(), all.view(), b, tau, 0).unwrap();
        let want = (7f64.ln() + (3.0 * 2f64.exp() + 4.0).ln()) / 2.0;
        assert!((r - want).abs() < 1e-12, "{r} vs {want}");
        assert!(r > chance_level(b));
        // One image: no batch.
        let one = s![..1, .., .., ..];
        assert!(pixel_reference(x.slice(one), xs.slice(one), all.view(), b, tau, 0).is_none());
        // Pixels outside the mask do not count: a tissue of pixels 0–7 leaves the same images
        // and views with nothing shared (pixels 8 and 11 are outside), so every similarity of
        // a view is 0 (a zero vector) and the images' rows are at chance.
        let mut tissue = ndarray::Array2::<u8>::ones((2, 6));
        tissue[[1, 2]] = 0;
        tissue[[1, 5]] = 0;
        let r = pixel_reference(x.view(), xs.view(), tissue.view(), b, tau, 0).unwrap();
        assert!((r - 7f64.ln()).abs() < 1e-12, "{r} vs ln 7");
    }

    #[test]
    fn one_cluster_holding_most_images_warns_at_any_k_from_4() {
        // 135 of 256 genes in cluster 2 of K 9 (the DLPFC case of issue 23).
        let mut labels = vec![2usize; 135];
        labels.extend((0..121).map(|i| [0, 1, 3, 4, 5, 6, 7, 8][i % 8]));
        let w = dominant_cluster_warning(&labels, 9).unwrap();
        assert!(w.contains("cluster 2 holds 135 of 256"), "{w}");
        // Exactly half does not warn; nor does K < 4, where one cluster may hold half.
        let half: Vec<usize> = (0..256)
            .map(|i| usize::from(i >= 128) * (1 + i % 8))
            .collect();
        assert!(dominant_cluster_warning(&half, 9).is_none());
        assert!(dominant_cluster_warning(&[0, 0, 0, 1], 3).is_none());
    }

    #[test]
    fn the_default_k_is_explained() {
        let s = explain_k(crate::config::Clusters::St, 16, 488).unwrap();
        assert!(s.contains("round(N/30)") && s.contains("--clusters"), "{s}");
        assert!(explain_k(crate::config::Clusters::Auto, 5, 488).is_none());
    }
}
