//! The output folder belongs to one run (issue 24).
//!
//! A run never writes into `--out` directly. It claims `OUT.darlc-partial` beside it (the
//! *staging folder*), writes everything there — `log.jsonl` as it goes, checkpoints, the outputs —
//! and only when the run is complete swaps it in: the previous `OUT` (a finished darlc run, an
//! empty folder, or with `--force` anything) is moved aside to `OUT.darlc-old`, the staging folder
//! renamed to `OUT`, the old one removed. So `OUT` is always wholly one finished run or absent, and
//! a failed rerun leaves the previous result as it was.
//!
//! * A non-empty `OUT` without a darlc `run.json` is refused unless `--force`.
//! * `OUT.darlc-partial/.darlc.lock` is held with an exclusive advisory lock (`flock`, released by
//!   the kernel when the process dies) for the whole run, so a second run into the same `OUT`
//!   is refused while the first is alive, and a staging folder left by a dead run is recognised.
//! * A staging folder with a checkpoint (an interrupted run) is never discarded silently: a fresh
//!   run is refused with the command that resumes it (or `--force` to start over).
//! * Temporary files of atomic writes (`.NAME.tmp-PID`) left by a killed process are removed
//!   when the folder is claimed again and before it is swapped in; the lock file and the
//!   checkpoint are removed before the swap.

use crate::error::{DarlcError, Result};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Suffix of the staging folder beside `--out`.
pub const STAGING_SUFFIX: &str = ".darlc-partial";
/// Suffix of the previous result while it is being replaced.
const OLD_SUFFIX: &str = ".darlc-old";
/// Lock file inside the staging folder.
const LOCK: &str = ".darlc.lock";

/// `OUT` + `suffix` as a sibling path.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// The staging folder of `out`.
pub fn staging_of(out: &Path) -> PathBuf {
    sibling(out, STAGING_SUFFIX)
}

/// `--out` for a path the user gave to `--resume`: the output folder itself or its staging folder.
pub fn out_of(dir: &Path) -> PathBuf {
    let s = dir.as_os_str().to_string_lossy();
    let s = s.trim_end_matches('/');
    match s.strip_suffix(STAGING_SUFFIX) {
        Some(o) => PathBuf::from(o),
        None => PathBuf::from(s),
    }
}

/// The paths a run may write to (`OUT`, its staging and old folders), absolute, for excluding
/// them from the input hashes when `--out` lies inside `--input`.
pub fn owned_paths(out: &Path) -> Vec<PathBuf> {
    let abs = absolute(out);
    vec![
        abs.clone(),
        sibling(&abs, STAGING_SUFFIX),
        sibling(&abs, OLD_SUFFIX),
    ]
}

/// `p` made absolute with its existing ancestors resolved (symlinks, `..`), so that paths found
/// by walking a canonical input folder compare equal.
pub fn absolute(p: &Path) -> PathBuf {
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => {
            let parent = if parent.as_os_str().is_empty() {
                Path::new(".")
            } else {
                parent
            };
            absolute(parent).join(name)
        }
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    }
}

/// Whether `dir` holds a run darlc wrote (a `run.json` with `darlc_version`).
fn is_darlc_run(dir: &Path) -> bool {
    std::fs::read_to_string(dir.join("run.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("darlc_version").is_some())
}

/// Whether `dir` is a folder darlc wrote: a `darlc run` folder, or the output of `darlc smooth`
/// (`smoothing.json`) or `darlc embed` (`warmup.jsonl`).
fn is_darlc_folder(dir: &Path) -> bool {
    is_darlc_run(dir) || dir.join("smoothing.json").is_file() || dir.join("warmup.jsonl").is_file()
}

fn is_empty_dir(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| DarlcError::io(dir, e))?
        .next()
        .is_none())
}

/// Remove `.NAME.tmp-PID` files of atomic writes from `dir` (not recursive).
pub fn remove_temp_files(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with('.') && n.contains(".tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A claimed staging folder (see the module docs). Dropping it without [`Self::finish`] removes
/// the staging folder unless it holds a checkpoint (then it stays, for `--resume`).
pub struct OutputFolder {
    out: PathBuf,
    staging: PathBuf,
    lock: Option<File>,
    finished: bool,
}

/// Take the lock of an existing staging folder, or say who holds it.
fn lock_staging(staging: &Path, out: &Path) -> Result<File> {
    let path = staging.join(LOCK);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| DarlcError::io(&path, e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = std::fs::read_to_string(&path).unwrap_or_default();
            Err(DarlcError::param(
                "--out",
                format!(
                    "another darlc run ({}) is writing {} (its staging folder {} is locked); wait \
                     for it to end or choose another --out",
                    who.trim(),
                    out.display(),
                    staging.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(DarlcError::io(&path, e)),
    }
}

fn write_owner(f: &mut File) {
    let _ = f.set_len(0);
    let _ = writeln!(f, "pid {}", std::process::id());
}

impl OutputFolder {
    /// Claim a fresh staging folder for a new run into `out`. Refuses a non-empty `out` that is
    /// not a darlc run (unless `force`), a run in progress, and an interrupted run's staging
    /// folder (unless `force`, which discards it).
    pub fn create(out: &Path, force: bool) -> Result<Self> {
        if out.exists() {
            if !out.is_dir() {
                return Err(DarlcError::param(
                    "--out",
                    format!("{} exists and is not a folder", out.display()),
                ));
            }
            if !force && !is_empty_dir(out)? && !is_darlc_folder(out) {
                return Err(DarlcError::param(
                    "--out",
                    format!(
                        "{} is not empty and holds no darlc run.json: darlc will not mix its \
                         results with other files. Choose a new or empty folder (--force \
                         replaces the folder's contents when the run completes)",
                        out.display()
                    ),
                ));
            }
        }
        let staging = staging_of(out);
        if let Some(parent) = staging.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| DarlcError::io(parent, e))?;
        }
        if staging.exists() {
            let lock = lock_staging(&staging, out)?;
            if crate::pipeline::checkpoint::Checkpoint::path(&staging).exists() && !force {
                return Err(DarlcError::param(
                    "--out",
                    format!(
                        "{} holds an interrupted run; continue it with `darlc run --resume {}` \
                         (an interrupted `darlc embed`: the same command with --resume), or \
                         pass --force to discard it and start again",
                        staging.display(),
                        out.display()
                    ),
                ));
            }
            std::fs::remove_dir_all(&staging).map_err(|e| DarlcError::io(&staging, e))?;
            drop(lock);
        }
        std::fs::create_dir(&staging).map_err(|e| DarlcError::io(&staging, e))?;
        let mut lock = lock_staging(&staging, out)?;
        write_owner(&mut lock);
        Ok(OutputFolder {
            out: out.to_path_buf(),
            staging,
            lock: Some(lock),
            finished: false,
        })
    }

    /// Claim the staging folder of an interrupted run into `out` (it must hold a checkpoint).
    pub fn reopen(out: &Path) -> Result<Self> {
        let staging = staging_of(out);
        if !crate::pipeline::checkpoint::Checkpoint::path(&staging).exists() {
            let what = if is_darlc_run(out) {
                format!("{} is a finished run", out.display())
            } else {
                format!("{} holds no checkpoint", staging.display())
            };
            return Err(DarlcError::param(
                "--resume",
                format!("nothing to resume: {what}"),
            ));
        }
        let mut lock = lock_staging(&staging, out)?;
        write_owner(&mut lock);
        remove_temp_files(&staging);
        Ok(OutputFolder {
            out: out.to_path_buf(),
            staging,
            lock: Some(lock),
            finished: false,
        })
    }

    /// Where the run writes.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final output folder.
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// The run is complete: drop the checkpoint and temporary files and swap the staging folder
    /// in as `out`, replacing what was there.
    pub fn finish(mut self) -> Result<()> {
        let ck = crate::pipeline::checkpoint::Checkpoint::path(&self.staging);
        if ck.exists() {
            std::fs::remove_file(&ck).map_err(|e| DarlcError::io(&ck, e))?;
        }
        remove_temp_files(&self.staging);
        let old = sibling(&self.out, OLD_SUFFIX);
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| DarlcError::io(&old, e))?;
        }
        let had_out = self.out.exists();
        if had_out {
            std::fs::rename(&self.out, &old).map_err(|e| DarlcError::io(&self.out, e))?;
        }
        std::fs::rename(&self.staging, &self.out).map_err(|e| DarlcError::io(&self.staging, e))?;
        self.finished = true;
        // The lock file moved along with the folder and is still held; remove it, then release.
        let _ = std::fs::remove_file(self.out.join(LOCK));
        self.lock = None;
        if had_out {
            std::fs::remove_dir_all(&old).map_err(|e| DarlcError::io(&old, e))?;
        }
        Ok(())
    }
}

impl Drop for OutputFolder {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        remove_temp_files(&self.staging);
        let ck = crate::pipeline::checkpoint::Checkpoint::path(&self.staging);
        if !ck.exists() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
        self.lock = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("darlc-outdir-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn resume_paths_accept_the_folder_or_its_staging_folder() {
        assert_eq!(out_of(Path::new("a/res")), PathBuf::from("a/res"));
        assert_eq!(
            out_of(Path::new("a/res.darlc-partial/")),
            PathBuf::from("a/res")
        );
        assert_eq!(
            staging_of(Path::new("a/res")),
            PathBuf::from("a/res.darlc-partial")
        );
    }

    #[test]
    fn a_folder_is_swapped_in_whole_and_a_second_claim_is_refused() {
        let d = scratch("swap");
        let out = d.join("res");
        let f = OutputFolder::create(&out, false).unwrap();
        std::fs::write(f.path().join("run.json"), "{\"darlc_version\": \"x\"}").unwrap();
        std::fs::write(f.path().join(".a.tmp-1"), "").unwrap();
        let e = OutputFolder::create(&out, false).err().unwrap().to_string();
        assert!(e.contains("another darlc run"), "{e}");
        assert!(!out.exists());
        f.finish().unwrap();
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["run.json".to_string()]);
        // A failed rerun leaves the finished folder as it was and no staging folder.
        let f = OutputFolder::create(&out, false).unwrap();
        std::fs::write(f.path().join("clusters.csv"), "x").unwrap();
        drop(f);
        assert!(!staging_of(&out).exists());
        assert!(out.join("run.json").exists() && !out.join("clusters.csv").exists());
        // A foreign folder is refused unless forced.
        let foreign = d.join("mine");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("notes.txt"), "x").unwrap();
        let e = OutputFolder::create(&foreign, false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("--force"), "{e}");
        OutputFolder::create(&foreign, true)
            .unwrap()
            .finish()
            .unwrap();
        assert!(!foreign.join("notes.txt").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
