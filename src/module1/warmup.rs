//! Warm-up training of Module I (method §4.5): Adam, consecutive batches of a fresh per-epoch
//! permutation, a fresh mask per batch, EMA after every step; a progress bar and a JSON-lines log.

use super::mim::draw_visible;
use super::model::ModuleI;
use crate::error::Result;
use crate::float::Float;
use crate::nn::adam::Adam;
use crate::progress::{Eta, batch_job_line};
use crate::rng;
use ndarray::{ArrayView4, Axis};
use rand::Rng;
use std::path::PathBuf;
use std::time::Instant;

/// Options of the warm-up (defaults: method §4.5).
#[derive(Clone, Debug)]
pub struct WarmupOptions {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f64,
    pub seed: u64,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// Write one JSON line per epoch here (rewritten atomically after each epoch).
    pub log: Option<PathBuf>,
}

impl Default for WarmupOptions {
    fn default() -> Self {
        WarmupOptions {
            epochs: 50,
            batch: 256,
            lr: 1e-3,
            seed: 0,
            progress: false,
            log: None,
        }
    }
}

/// Per-epoch means of the step losses (weighted by batch size) and timing.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub steps: usize,
    pub images: usize,
    pub l_ssl: f64,
    pub l_mim: f64,
    pub l_cl: f64,
    /// σ₁, σ₂ at the end of the epoch.
    pub sigma1: f64,
    pub sigma2: f64,
    pub seconds: f64,
    pub images_per_s: f64,
}

impl EpochLog {
    /// One line for a log file: `warm-up epoch e/E: losses, img/s, seconds`.
    pub fn describe(&self, epochs: usize) -> String {
        format!(
            "warm-up epoch {}/{epochs}: L_SSL {:.4} (L_MIM {:.4}, L_CL {:.4}), {:.1} img/s, {:.1} s",
            self.epoch + 1,
            self.l_ssl,
            self.l_mim,
            self.l_cl,
            self.images_per_s,
            self.seconds
        )
    }
}

/// A permutation of `0..n` from a stream (Fisher–Yates).
pub fn permutation<R: Rng>(r: &mut R, n: usize) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = r.random_range(0..=i);
        p.swap(i, j);
    }
    p
}

/// Batches of an epoch: consecutive slices of `perm` of size `batch`; a final batch of size 1 is
/// dropped (method §4.5), smaller ones are kept.
pub fn batches(perm: &[usize], batch: usize) -> Vec<&[usize]> {
    perm.chunks(batch.max(1)).filter(|c| c.len() >= 2).collect()
}

/// Steps per epoch of [`batches`]: full batches plus a final one of at least 2 images.
pub fn steps_per_epoch(n: usize, batch: usize) -> usize {
    let batch = batch.max(1);
    n / batch + usize::from(n % batch >= 2)
}

/// A step progress bar (`epoch`/`loss` in prefix and message), hidden unless `show`; indicatif
/// also hides it when stderr is not a terminal, and the training loops then print one
/// [`batch_job_line`] per epoch instead.
pub fn step_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(total);
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    b.set_style(style);
    b
}

/// Where a warm-up stands: `epoch` epochs complete and, of the next one, `batches` optimiser steps
/// with the running sums of their losses (weighted by batch size, in batch order) and the images
/// they saw. At an epoch boundary `batches` is 0 and the sums are 0. A checkpoint written inside an
/// epoch holds it, so that the resumed epoch's record has the same bits as an uninterrupted one's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WarmupProgress {
    pub epoch: usize,
    pub batches: usize,
    pub images: usize,
    pub l_ssl: f64,
    pub l_mim: f64,
    pub l_cl: f64,
}

impl WarmupProgress {
    /// The start of epoch `epoch` (nothing done in it).
    pub fn at_epoch(epoch: usize) -> Self {
        WarmupProgress {
            epoch,
            ..Self::default()
        }
    }
}

/// What [`warmup_from`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum WarmupEvent<'a> {
    /// After an optimiser step that is not the last of its epoch (a checkpoint writer uses it
    /// only when a stop was asked for).
    Step(&'a WarmupProgress),
    /// After an epoch, with its record.
    Epoch(&'a EpochLog),
}

/// Train `model` for `opts.epochs` epochs on raw images `x` and their smoothed twins `x_s`
/// (`[N, C, H, W]`). Permutations come from the stream `"warmup.perm.epoch{e}"`, masks from
/// `"warmup.mask.epoch{e}"` (drawn batch after batch). `on_epoch` receives each epoch's record
/// as soon as it is complete.
pub fn warmup<T: Float>(
    model: &mut ModuleI<T>,
    x: ArrayView4<T>,
    x_s: ArrayView4<T>,
    opts: &WarmupOptions,
    mut on_epoch: impl FnMut(&EpochLog) -> Result<()>,
) -> Result<Vec<EpochLog>> {
    let mut adam = Adam::<T>::new(opts.lr);
    let from = WarmupProgress::default();
    warmup_from(model, &mut adam, from, x, x_s, opts, |ev, _, _| match ev {
        WarmupEvent::Epoch(log) => on_epoch(log),
        WarmupEvent::Step(_) => Ok(()),
    })
}

/// [`warmup`] from `from` (the start, or a checkpoint's position, possibly inside an epoch) with
/// the optimiser `adam` (a checkpoint's state, or a fresh `Adam::new(opts.lr)` at the start).
/// Every epoch's random streams are named by its index, and the first `from.batches` batches of
/// the epoch `from.epoch` are skipped after drawing their masks (the permutation is drawn whole
/// before the first batch, the masks batch after batch), so the steps run here draw exactly what
/// an uninterrupted run draws. `on_event` receives, with the model and the optimiser, the position
/// after every step but the last of an epoch and every epoch's record (for checkpoints); an error
/// from it stops the warm-up.
pub fn warmup_from<T: Float>(
    model: &mut ModuleI<T>,
    adam: &mut Adam<T>,
    from: WarmupProgress,
    x: ArrayView4<T>,
    x_s: ArrayView4<T>,
    opts: &WarmupOptions,
    mut on_event: impl FnMut(WarmupEvent, &ModuleI<T>, &Adam<T>) -> Result<()>,
) -> Result<Vec<EpochLog>> {
    let n = x.dim().0;
    let first = from.epoch;
    let left = opts.epochs.saturating_sub(first);
    let total = (steps_per_epoch(n, opts.batch) * left).saturating_sub(from.batches) as u64;
    let bar = step_bar(opts.progress, total);
    let mut eta = Eta::new(left);
    let mut logs = Vec::new();
    let mut lines = String::new();
    let (l, nk) = (model.cfg.tokens(), model.cfg.n_keep());
    for e in first..opts.epochs {
        let start = Instant::now();
        bar.set_prefix(format!("epoch {}/{}", e + 1, opts.epochs));
        let perm = permutation(
            &mut rng::stream(opts.seed, &format!("warmup.perm.epoch{e}")),
            n,
        );
        let mut mask_rng = rng::stream(opts.seed, &format!("warmup.mask.epoch{e}"));
        // The running sums of the epoch (a checkpoint's when it stopped inside this epoch).
        let mut p = if e == first {
            from
        } else {
            WarmupProgress::at_epoch(e)
        };
        let skip = p.batches;
        let all = batches(&perm, opts.batch);
        for (i, idx) in all.iter().enumerate() {
            let vis = draw_visible(&mut mask_rng, idx.len(), l, nk);
            if i < skip {
                continue;
            }
            let xb = x.select(Axis(0), idx);
            let xsb = x_s.select(Axis(0), idx);
            let s = model.train_step(adam, xb.view(), xsb.view(), &vis)?;
            let w = idx.len() as f64;
            p.l_ssl += w * s.l_ssl;
            p.l_mim += w * s.l_mim;
            p.l_cl += w * s.l_cl;
            p.images += idx.len();
            p.batches += 1;
            let secs = start.elapsed().as_secs_f64();
            bar.set_message(format!(
                "L_SSL {:.4} L_MIM {:.4} L_CL {:.4}  {:.1} img/s",
                s.l_ssl,
                s.l_mim,
                s.l_cl,
                p.images as f64 / secs.max(1e-9)
            ));
            bar.inc(1);
            if i + 1 < all.len() {
                on_event(WarmupEvent::Step(&p), model, adam)?;
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let d = p.images.max(1) as f64;
        let (sigma1, sigma2) = model.sigmas();
        let log = EpochLog {
            epoch: e,
            steps: p.batches,
            images: p.images,
            l_ssl: p.l_ssl / d,
            l_mim: p.l_mim / d,
            l_cl: p.l_cl / d,
            sigma1,
            sigma2,
            seconds: secs,
            images_per_s: p.images as f64 / secs.max(1e-9),
        };
        if let Some(path) = &opts.log {
            lines.push_str(&serde_json::to_string(&log).unwrap_or_default());
            lines.push('\n');
            crate::io::atomic_write(path, lines.as_bytes())?;
        }
        if opts.progress {
            let left = eta.after(secs);
            batch_job_line(&format!("{}{left}", log.describe(opts.epochs)));
        }
        on_event(WarmupEvent::Epoch(&log), model, adam)?;
        logs.push(log);
    }
    bar.finish_and_clear();
    Ok(logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_drop_only_a_final_singleton() {
        let p: Vec<usize> = (0..13).collect();
        let b = batches(&p, 6);
        assert_eq!(b.iter().map(|c| c.len()).collect::<Vec<_>>(), vec![6, 6]);
        assert_eq!(steps_per_epoch(13, 6), b.len());
        let p: Vec<usize> = (0..14).collect();
        assert_eq!(
            batches(&p, 6).iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![6, 6, 2]
        );
    }

    #[test]
    fn permutation_is_a_permutation() {
        let mut p = permutation(&mut rng::stream(1, "x"), 50);
        p.sort_unstable();
        assert_eq!(p, (0..50).collect::<Vec<_>>());
    }
}
