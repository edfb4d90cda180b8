//! The training schedule in optimiser steps (issue 23; method §20): a phase given a target number
//! of steps runs the fewest whole epochs that reach it, at a batch B chosen from N when the
//! configuration says `"auto"`.
//!
//! The paper counts epochs at B = 256 (method §14): 50 warm-up epochs are about 2,900 optimiser
//! steps on 15,000 genes but 100 on 500, too few for the EMA target (momentum 0.999, time constant
//! 1,000 steps) to leave its random start, so the contrastive loss stays at chance on a small
//! section. Counting steps gives every section from a few hundred to tens of thousands of genes a
//! comparable amount of training, and the compute then grows with N only through the number of
//! images per step, not per epoch.
//!
//! [`resolve`] turns (N, targets, batch rule) into (batch, epochs, actual steps) once, before
//! training; [`Schedule::apply`] writes the result into the configuration, so the training loops
//! see a plain epoch count and batch size. Without targets (the paper preset) the configuration
//! passes through unchanged.

use crate::config::{Batch, Config};
use crate::module1::warmup::steps_per_epoch;
use serde::Serialize;

/// One phase's resolved schedule (a `run.json` record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhaseSchedule {
    /// Batch size B.
    pub batch: usize,
    /// Whole epochs the phase runs.
    pub epochs: usize,
    /// Optimiser steps per epoch at B (`⌊N/B⌋`, plus one for a final batch of ≥ 2 images).
    pub steps_per_epoch: usize,
    /// Optimiser steps of the phase: `epochs × steps_per_epoch` (the joint phase's batch-level
    /// steps; each joint epoch adds one epoch-level step).
    pub steps: usize,
    /// The target that produced `epochs`, or `None` when the epochs were given.
    pub target_steps: Option<usize>,
    /// The floor on `epochs` with a target (`module1.warmup_min_epochs`; absent when 0).
    #[serde(skip_serializing_if = "crate::config::is_zero")]
    pub min_epochs: usize,
}

/// The resolved schedule of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// Number of images N it was resolved for.
    pub images: usize,
    /// `"auto"` when B came from [`Batch::size_for`], `"given"` otherwise.
    pub batch_rule: &'static str,
    pub warmup: PhaseSchedule,
    pub joint: PhaseSchedule,
}

/// The fewest whole epochs of `steps_per_epoch` steps that make at least `target` steps, and at
/// least `min_epochs`.
fn epochs_for(target: usize, steps_per_epoch: usize, min_epochs: usize) -> usize {
    target.div_ceil(steps_per_epoch.max(1)).max(min_epochs)
}

/// Resolve `c`'s schedule for `n` images:
///
/// * `B = c.module1.batch.size_for(n)` (`"auto"`: `clamp(⌊N/4⌋, 2, 32)`, [`Batch::size_for`]);
/// * warm-up epochs = `max(⌈warmup_steps / steps_per_epoch(N, B)⌉, warmup_min_epochs)` when
///   `module1.warmup_steps` is set (0 steps → no warm-up), else `module1.warmup_epochs`;
/// * joint epochs = `⌈joint_steps / steps_per_epoch(N, B)⌉`, at least 1 for a positive target,
///   when `module2.joint_steps` is set, else `module2.joint_epochs`.
///
/// Both phases share B (the joint phase's batch steps use the warm-up's batch, method §9.4).
pub fn resolve(n: usize, c: &Config) -> Schedule {
    let batch = c.module1.batch.size_for(n);
    let spe = steps_per_epoch(n, batch);
    let phase = |target: Option<usize>, epochs: usize, min_epochs: usize| {
        let epochs = match target {
            Some(0) => 0,
            Some(t) => epochs_for(t, spe, min_epochs.max(1)),
            None => epochs,
        };
        PhaseSchedule {
            batch,
            epochs,
            steps_per_epoch: spe,
            steps: epochs * spe,
            target_steps: target,
            min_epochs: if target.is_some() { min_epochs } else { 0 },
        }
    };
    Schedule {
        images: n,
        batch_rule: match c.module1.batch {
            Batch::Auto => "auto",
            Batch::Fixed(_) => "given",
        },
        warmup: phase(
            c.module1.warmup_steps,
            c.module1.warmup_epochs,
            c.module1.warmup_min_epochs,
        ),
        joint: phase(c.module2.joint_steps, c.module2.joint_epochs, 0),
    }
}

impl Schedule {
    /// `c` with the resolved batch and epoch counts written in (the targets stay, as a record).
    pub fn apply(&self, c: &Config) -> Config {
        let mut c = c.clone();
        c.module1.batch = Batch::Fixed(self.warmup.batch);
        c.module1.warmup_epochs = self.warmup.epochs;
        c.module2.joint_epochs = self.joint.epochs;
        c
    }

    /// One line per phase for stderr, e.g. `warm-up: 100 epochs × 16 steps = 1600 optimiser
    /// steps at B = 32 (target 1600 steps)`.
    pub fn describe(&self) -> String {
        let line = |name: &str, p: &PhaseSchedule| {
            let why = match p.target_steps {
                Some(t) if p.min_epochs > 0 => {
                    format!("target {t} steps, at least {} epochs", p.min_epochs)
                }
                Some(t) => format!("target {t} steps"),
                None => "epochs given".to_string(),
            };
            format!(
                "{name}: {} epochs × {} steps = {} optimiser steps at B = {} ({why})\n",
                p.epochs, p.steps_per_epoch, p.steps, p.batch
            )
        };
        format!(
            "{}{}",
            line("warm-up", &self.warmup),
            line("joint", &self.joint)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_preset_passes_through_unchanged() {
        // method §14: 50 + 50 epochs at B = 256 whatever N is; `apply` changes nothing.
        let c = Config::preset("paper").unwrap();
        for n in [2, 287, 488, 16_110] {
            let s = resolve(n, &c);
            assert_eq!((s.warmup.epochs, s.joint.epochs), (50, 50));
            assert_eq!((s.warmup.batch, s.batch_rule), (256, "given"));
            assert_eq!(s.warmup.target_steps, None);
            assert_eq!(s.apply(&c), c, "N = {n}");
        }
        // 488 genes at B 256: 2 steps per epoch (256 + 232), 100 in 50 epochs.
        let s = resolve(488, &c);
        assert_eq!((s.warmup.steps_per_epoch, s.warmup.steps), (2, 100));
    }

    #[test]
    fn step_targets_give_whole_epochs_reaching_the_target() {
        let mut c = Config::default();
        c.module1.batch = Batch::Auto;
        c.module1.warmup_steps = Some(1600);
        c.module2.joint_steps = Some(160);
        // The 488-gene DLPFC section of issue 23: B 32, 15 full batches + one of 8 = 16 steps
        // per epoch: benches/small_section.json's 100 warm-up and 10 joint epochs.
        let s = resolve(488, &c);
        assert_eq!(s.warmup.batch, 32);
        assert_eq!(s.warmup.steps_per_epoch, 16);
        assert_eq!((s.warmup.epochs, s.warmup.steps), (100, 1600));
        assert_eq!((s.joint.epochs, s.joint.steps), (10, 160));
        // 16,110 genes: 504 steps per epoch (503 full + one of 14).
        let s = resolve(16_110, &c);
        assert_eq!(s.warmup.steps_per_epoch, 504);
        assert_eq!((s.warmup.epochs, s.warmup.steps), (4, 2016));
        assert_eq!((s.joint.epochs, s.joint.steps), (1, 504));
        // 1,000 genes: 31 full batches + one of 8 = 32 steps; ⌈1600/32⌉ = 50 epochs.
        let s = resolve(1000, &c);
        assert_eq!((s.warmup.epochs, s.warmup.steps), (50, 1600));
        // Every resolution reaches its target with less than one epoch to spare.
        for n in [8, 33, 100, 287, 999, 5000, 20_000] {
            let s = resolve(n, &c);
            for (p, t) in [(&s.warmup, 1600), (&s.joint, 160)] {
                assert!(p.steps >= t, "N = {n}: {p:?}");
                assert!(p.steps - p.steps_per_epoch < t, "N = {n}: {p:?}");
            }
        }
        // `apply` writes B and the epochs into the configuration the loops read.
        let r = resolve(488, &c).apply(&c);
        assert_eq!(r.module1.batch, Batch::Fixed(32));
        assert_eq!((r.module1.warmup_epochs, r.module2.joint_epochs), (100, 10));
    }

    /// `module1.warmup_min_epochs` (the recommended preset's 16) binds on large sections only:
    /// the 12,947-gene MOB section has 405 steps per epoch (404 full + one of 19), so 1,600 steps
    /// would be 4 epochs; DLPFC's 256 genes and 1,000 genes keep the target's epochs.
    #[test]
    fn the_warm_up_floor_binds_on_large_sections_only() {
        let c = Config::preset("recommended").unwrap();
        let s = resolve(12_947, &c);
        assert_eq!(s.warmup.steps_per_epoch, 405);
        assert_eq!((s.warmup.epochs, s.warmup.steps), (16, 6480));
        assert_eq!(s.warmup.min_epochs, 16);
        assert_eq!(s.joint.epochs, 1, "the floor is the warm-up's only");
        assert!(
            s.describe()
                .contains("(target 1600 steps, at least 16 epochs)")
        );
        assert_eq!(resolve(256, &c).warmup.epochs, 200);
        assert_eq!(resolve(1000, &c).warmup.epochs, 50);
        // A zero target still means no warm-up.
        let mut z = c.clone();
        z.module1.warmup_steps = Some(0);
        assert_eq!(resolve(12_947, &z).warmup.epochs, 0);
    }

    #[test]
    fn zero_targets_and_tiny_sections() {
        let mut c = Config::default();
        c.module1.batch = Batch::Auto;
        c.module1.warmup_steps = Some(0);
        c.module2.joint_steps = Some(0);
        let s = resolve(488, &c);
        assert_eq!((s.warmup.epochs, s.joint.epochs), (0, 0));
        // osmFISH's 33 genes: B = ⌊33/4⌋ = 8, 4 full batches (the last image is dropped).
        c.module2.joint_steps = Some(1);
        let s = resolve(33, &c);
        assert_eq!((s.warmup.batch, s.warmup.steps_per_epoch), (8, 4));
        assert_eq!(
            s.joint.epochs, 1,
            "a positive target runs at least one epoch"
        );
        // The auto rule never goes below 2 (NT-Xent and BatchNorm need two items).
        assert_eq!(Batch::Auto.size_for(3), 2);
        assert_eq!(Batch::Auto.size_for(127), 31);
        assert_eq!(Batch::Auto.size_for(128), 32);
        assert_eq!(Batch::Auto.size_for(1_000_000), 32);
    }
}
