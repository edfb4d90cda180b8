//! Issue 24, "no lost work": the output folder belongs to one run, and a DARLC run interrupted at
//! any checkpoint (by `DARLC_STOP_AFTER`, which acts as a signal arriving during that epoch or,
//! spelt `stage:epochs.steps`, during that optimiser step, or by a real SIGTERM) resumes to
//! outputs byte-identical to an uninterrupted run's, on 1 or 2 threads (`run.json` compared
//! without its timings and thread count, `log.jsonl` without its timings).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod pipeline_common;

use pipeline_common::darlc;

fn tmp(name: &str) -> PathBuf {
    pipeline_common::tmp("resume", name)
}

/// An 80-gene simulated section (67 genes after the MT- filter), written once per test binary.
fn section() -> PathBuf {
    static ONCE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let d = tmp("sim80");
        let o = darlc()
            .args(["simulate", "--genes", "80", "--seed", "1", "--out"])
            .arg(&d)
            .output()
            .unwrap();
        ok(&o);
        d
    })
    .clone()
}

/// A copy of the section that a test may change.
fn copy_of_section(name: &str) -> PathBuf {
    let d = tmp(name);
    for (rel, bytes) in files(&section()) {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    d
}

fn staging(out: &Path) -> PathBuf {
    out.with_file_name(format!(
        "{}.darlc-partial",
        out.file_name().unwrap().to_string_lossy()
    ))
}

/// The tiny preset's schedule with every stage long enough to be interrupted in the middle: 5 GAT
/// epochs (a checkpoint after each), 3 warm-up and 3 joint epochs of 11 steps (67 genes at B 6).
const SHORT: &str = r#"{"module1": {"warmup_epochs": 3}, "module2": {"joint_epochs": 3}}"#;
/// A longer warm-up of 33 steps per epoch (B 2), so that a real signal arrives while the run is
/// training, almost always inside an epoch.
const LONG: &str =
    r#"{"module1": {"warmup_epochs": 20, "batch": 2}, "module2": {"joint_epochs": 1}}"#;

/// Write `json` beside the scratch folders and return its path.
fn config(name: &str, json: &str) -> PathBuf {
    let p = tmp(&format!("{name}.json"));
    std::fs::write(&p, json).unwrap();
    p
}

/// `darlc run` on the simulated section into `out` with the tiny preset and `cfg`.
fn run_cmd(out: &Path, cfg: &Path, threads: &str) -> Command {
    let mut c = darlc();
    c.env("RAYON_NUM_THREADS", threads)
        .env_remove("DARLC_STOP_AFTER")
        .arg("run")
        .arg("--input")
        .arg(section())
        .arg("--out")
        .arg(out)
        .args(["--preset", "tiny", "--config"])
        .arg(cfg);
    c
}

fn ok(o: &Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The command failed and its stderr holds every one of `wants`.
fn failed_saying(o: &Output, wants: &[&str]) {
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(wants.iter().all(|w| err.contains(w)), "{err}");
}

/// Every file under `dir` by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `log.jsonl` without the wall-time fields.
fn log_without_timings(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            for k in ["seconds", "images_per_s", "timing"] {
                o.remove(k);
            }
            v
        })
        .collect()
}

/// `run.json` without the timings and the thread count, and with `--out` in the command (the
/// one argument that differs between the folders compared) replaced by `OUT` and
/// `--checkpoint-every S` left out (how often the run saved itself, like the thread count, is
/// not what it computed). A resumed run records the command that started it, not `--resume`.
fn run_json_without_timings(bytes: &[u8], out: &Path) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("phases");
    o.remove("threads");
    let out = out.display().to_string();
    let command = o["command"].as_array_mut().unwrap();
    if let Some(i) = command.iter().position(|a| a == "--checkpoint-every") {
        command.drain(i..i + 2);
    }
    for a in command.iter_mut() {
        assert_ne!(a, "--resume", "run.json must record the original command");
        if *a == out {
            *a = "OUT".into();
        }
    }
    v
}

/// The two folders hold the same files with the same bytes (timings excepted).
fn assert_same_run(reference: &Path, resumed: &Path, what: &str) {
    let (a, b) = (files(reference), files(resumed));
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "{what}: different files"
    );
    for (name, bytes) in &a {
        let other = &b[name];
        match name.as_str() {
            "log.jsonl" => assert_eq!(
                log_without_timings(bytes),
                log_without_timings(other),
                "{what}: log.jsonl"
            ),
            "report.html" => assert!(
                darlc::pipeline::report_html::without_volatile(&String::from_utf8_lossy(bytes))
                    == darlc::pipeline::report_html::without_volatile(&String::from_utf8_lossy(
                        other
                    )),
                "{what}: report.html (timings, threads and command excepted)"
            ),
            "run.json" => assert_eq!(
                run_json_without_timings(bytes, reference),
                run_json_without_timings(other, resumed),
                "{what}: run.json"
            ),
            _ => assert!(bytes == other, "{what}: {name} differs"),
        }
    }
}

/// No temporary file of an atomic write under `dir`, and nothing beside it that the run owns
/// (its staging folder, the previous result being replaced) or a temporary file of its own.
fn assert_no_temp_files(dir: &Path) {
    for name in files(dir).keys() {
        assert!(!name.contains(".tmp-"), "temporary file left: {name}");
    }
    let stem = dir.file_name().unwrap().to_string_lossy().into_owned();
    for e in std::fs::read_dir(dir.parent().unwrap()).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            !(n.starts_with(&format!("{stem}.darlc-")) || n.starts_with(&format!(".{stem}.tmp-"))),
            "left beside the output: {n}"
        );
    }
}

/// Interrupt with `DARLC_STOP_AFTER=stop` (on `threads`); the run must exit as if terminated,
/// say how to resume, and leave no `out` but a staging folder with a checkpoint.
fn interrupt(out: &Path, cfg: &Path, stop: &str, threads: &str) {
    let o = run_cmd(out, cfg, threads)
        .env("DARLC_STOP_AFTER", stop)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(143), "{stop}: {err}");
    assert!(err.contains("--resume"), "{stop}: {err}");
    assert!(
        !out.exists(),
        "{stop}: an interrupted run must not leave {out:?}"
    );
    assert!(
        staging(out).join("checkpoint.safetensors").is_file(),
        "{stop}: no checkpoint"
    );
}

/// `darlc run --resume OUT` alone (the recorded arguments are repeated).
fn resume(out: &Path, threads: &str, stop: Option<&str>) -> Output {
    let mut c = darlc();
    c.env("RAYON_NUM_THREADS", threads)
        .env_remove("DARLC_STOP_AFTER")
        .arg("run")
        .arg("--resume")
        .arg(out);
    if let Some(s) = stop {
        c.env("DARLC_STOP_AFTER", s);
    }
    c.output().unwrap()
}

#[test]
fn a_resumed_run_is_byte_identical_to_an_uninterrupted_one() {
    let cfg = config("short", SHORT);
    let reference = tmp("reference");
    ok(&run_cmd(&reference, &cfg, "2").output().unwrap());
    assert!(!staging(&reference).exists());
    assert!(!reference.join("checkpoint.safetensors").exists());
    assert!(!reference.join(".darlc.lock").exists());
    assert_no_temp_files(&reference);
    let mut compared = 0;
    // Each stop point, interrupted on one thread count and resumed on the other: at epoch ends
    // (`stage:epochs`) and inside epochs (`stage:epochs.steps`: after the first and the
    // second-to-last of an epoch's 11 steps, and in the joint phase after the EM (`E.em`) and
    // after the epoch-level step (`E.0`)).
    for (i, stop) in [
        "smoothing:2",
        "smoothing:5",
        "similarity:0",
        "warm-up:0.1",
        "warm-up:1",
        "warm-up:1.3",
        "warm-up:2.10",
        "warm-up:3",
        "smm-init:0",
        "joint:0.em",
        "joint:0.0",
        "joint:1",
        "joint:1.em",
        "joint:1.5",
        "joint:2.10",
        "joint:3",
    ]
    .iter()
    .enumerate()
    {
        let (t1, t2) = if i % 2 == 0 { ("1", "2") } else { ("2", "1") };
        let out = tmp(&format!("stop-{i}"));
        interrupt(&out, &cfg, stop, t1);
        // A killed process's temporary file in the staging folder is cleaned up.
        std::fs::write(staging(&out).join(".clusters.csv.tmp-99999"), "x").unwrap();
        let o = resume(&out, t2, None);
        ok(&o);
        assert!(!staging(&out).exists(), "{stop}: staging folder left");
        assert_no_temp_files(&out);
        assert_same_run(&reference, &out, stop);
        compared += 1;
        std::fs::remove_dir_all(&out).unwrap();
    }
    // Interrupted twice: during the GAT, then again in the joint phase after resuming.
    let out = tmp("twice");
    interrupt(&out, &cfg, "smoothing:3", "2");
    let o = resume(&out, "1", Some("joint:2"));
    assert_eq!(
        o.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    ok(&resume(&out, "2", None));
    assert_same_run(&reference, &out, "twice");
    compared += 1;
    std::fs::remove_dir_all(&out).unwrap();
    // Twice inside epochs: a resumed mid-epoch run stops again inside the same epoch, then in the
    // joint phase.
    let out = tmp("twice-inside");
    interrupt(&out, &cfg, "warm-up:1.2", "1");
    for (stop, threads, said) in [
        (
            "warm-up:1.7",
            "2",
            "after step 7 of 11 of warm-up epoch 2 of 3",
        ),
        ("joint:2.em", "1", "after the EM of joint epoch 3 of 3"),
        (
            "joint:2.1",
            "2",
            "after batch step 1 of 11 of joint epoch 3 of 3",
        ),
    ] {
        let o = resume(&out, threads, Some(stop));
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(143), "{stop}: {err}");
        assert!(err.contains(said), "{stop}: {err}");
    }
    ok(&resume(&out, "2", None));
    assert_same_run(&reference, &out, "twice inside epochs");
    compared += 1;
    eprintln!("{compared} resumed runs compared byte for byte with the uninterrupted one");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&reference).unwrap();
}

/// The number in the run's closing `checkpoints: N written` line.
fn checkpoints_written(o: &Output) -> usize {
    let err = String::from_utf8_lossy(&o.stderr);
    let n = err
        .lines()
        .find_map(|l| l.split("checkpoints: ").nth(1))
        .and_then(|t| t.split(' ').next())
        .and_then(|t| t.parse().ok());
    n.unwrap_or_else(|| panic!("no checkpoint summary in:\n{err}"))
}

/// `--checkpoint-every`: 0 writes a checkpoint after each of the 5 GAT epochs, 3 warm-up and 3
/// joint epochs; a long interval writes one at the end of each of the three stages only; the
/// outputs are the same either way.
#[test]
fn checkpoints_are_written_as_often_as_asked_and_change_no_output() {
    let cfg = config("every", SHORT);
    let every_epoch = tmp("every-epoch");
    let o = run_cmd(&every_epoch, &cfg, "2")
        .args(["--checkpoint-every", "0"])
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(checkpoints_written(&o), 5 + 3 + 3);
    let stage_ends = tmp("stage-ends");
    let o = run_cmd(&stage_ends, &cfg, "2")
        .args(["--checkpoint-every", "1e9"])
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(checkpoints_written(&o), 3);
    assert_same_run(&every_epoch, &stage_ends, "--checkpoint-every 0 vs 1e9");
    for bad in ["-1", "nan", "inf"] {
        let o = run_cmd(&tmp("every-bad"), &cfg, "2")
            .args(["--checkpoint-every", bad])
            .output()
            .unwrap();
        failed_saying(&o, &["--checkpoint-every"]);
        assert!(!tmp("every-bad").exists(), "{bad}: a folder was left");
    }
}

#[test]
fn a_resume_with_another_config_or_input_is_refused_naming_the_difference() {
    let cfg = config("refuse", SHORT);
    let out = tmp("refuse");
    interrupt(&out, &cfg, "warm-up:1", "2");
    // A different seed given with the full arguments.
    let o = run_cmd(&out, &cfg, "2")
        .args(["--seed", "7", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("config `seed`: 0 (checkpoint) vs 7 (now)"),
        "{err}"
    );
    // The config file changed on disk since the run started.
    std::fs::write(
        &cfg,
        r#"{"module1": {"warmup_epochs": 4}, "module2": {"joint_epochs": 3}}"#,
    )
    .unwrap();
    let o = resume(&out, "2", None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("config `module1.warmup_epochs`"), "{err}");
    std::fs::write(&cfg, SHORT).unwrap();
    // A fresh run into the same folder is refused while a checkpoint waits there.
    let o = run_cmd(&out, &cfg, "2").output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("interrupted run") && err.contains("--resume"),
        "{err}"
    );
    assert!(staging(&out).join("checkpoint.safetensors").is_file());
    // A changed input file.
    let input = copy_of_section("refuse-input");
    let out2 = tmp("refuse2");
    let o = darlc()
        .env("DARLC_STOP_AFTER", "warm-up:1")
        .args(["run", "--preset", "tiny", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out2)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(143));
    let truth = input.join("truth.csv");
    let mut t = std::fs::read_to_string(&truth).unwrap();
    t.push('\n');
    std::fs::write(&truth, t).unwrap();
    let o = resume(&out2, "2", None);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("input file truth.csv: contents changed"),
        "{err}"
    );
    // --resume on a finished run.
    let o = run_cmd(&out, &cfg, "2").arg("--force").output().unwrap();
    ok(&o);
    let o = resume(&out, "2", None);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing to resume"));
    for d in [&out, &out2, &input, &staging(&out2)] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn sigterm_checkpoints_and_the_resumed_run_matches_a_second_run_is_locked_out() {
    let cfg = config("long", LONG);
    let reference = tmp("long-reference");
    ok(&run_cmd(&reference, &cfg, "2").output().unwrap());
    let out = tmp("sigterm");
    // A signal during an epoch's last step, or between its log line and its checkpoint, stops at
    // the end of that epoch (its checkpoint is then the latest point): try again, up to 3 times,
    // to see one land inside an epoch.
    let mut stopped_inside = false;
    for attempt in 0..3 {
        let _ = std::fs::remove_dir_all(staging(&out));
        let child = run_cmd(&out, &cfg, "2")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the first warm-up epoch in the staging folder's log.
        let log = staging(&out).join("log.jsonl");
        let t0 = Instant::now();
        while !log.exists() {
            assert!(t0.elapsed() < Duration::from_secs(300), "no warm-up epoch");
            std::thread::sleep(Duration::from_millis(20));
        }
        // Past the end of that epoch, into the next.
        std::thread::sleep(Duration::from_millis(30));
        if attempt == 0 {
            // A second run into the same folder is refused while the first one holds it.
            let o = run_cmd(&out, &cfg, "1").output().unwrap();
            assert!(!o.status.success());
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(err.contains("another darlc run"), "{err}");
        }
        let pid = libc::pid_t::try_from(child.id()).unwrap();
        // SAFETY: sending a signal to our own child process, which has not been waited for.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let t_kill = Instant::now();
        let o = child.wait_with_output().unwrap();
        let waited = t_kill.elapsed();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(143), "{err}");
        assert!(
            err.contains("stopped by SIGTERM") && err.contains("darlc run --resume"),
            "{err}"
        );
        assert!(!out.exists());
        assert!(staging(&out).join("checkpoint.safetensors").is_file());
        // "after step S of 33 of warm-up epoch E of 20": the step under way when the signal came.
        stopped_inside = err.contains(" of 33 of warm-up epoch ");
        eprintln!(
            "SIGTERM, attempt {attempt}: exit after {:.3} s, {}",
            waited.as_secs_f64(),
            err.lines().last().unwrap_or("")
        );
        if stopped_inside {
            break;
        }
    }
    assert!(
        stopped_inside,
        "three SIGTERMs each waited for the end of a warm-up epoch"
    );
    ok(&resume(&out, "1", None));
    assert_same_run(&reference, &out, "SIGTERM");
    assert_no_temp_files(&out);
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::remove_dir_all(&reference).unwrap();
}

fn kmeans(input: &Path, out: &Path, extra: &[&str]) -> Output {
    darlc()
        .args(["run", "--method", "kmeans", "--clusters", "5", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn the_output_folder_belongs_to_one_run() {
    let input = section();
    // A foreign non-empty folder is refused, untouched, unless --force.
    let out = tmp("foreign");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let o = kmeans(&input, &out, &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("--force") && err.contains("run.json"), "{err}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    assert!(!staging(&out).exists());
    ok(&kmeans(&input, &out, &["--force"]));
    assert!(!out.join("notes.txt").exists() && out.join("run.json").is_file());
    assert_no_temp_files(&out);
    // A rerun into a darlc folder replaces it whole: no file of the previous method survives.
    let o = darlc()
        .args(["run", "--method", "gmm-pca", "--clusters", "5", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    ok(&o);
    assert!(out.join("smm.safetensors").is_file());
    ok(&kmeans(&input, &out, &[]));
    assert!(
        !out.join("smm.safetensors").exists(),
        "a k-means rerun must not leave the GMM's files"
    );
    // A failed rerun leaves the previous run as it was.
    let before = files(&out);
    let o = kmeans(&input, &out, &["--clusters", "100000"]);
    assert!(!o.status.success());
    assert_eq!(files(&out), before);
    assert!(!staging(&out).exists());
    assert_no_temp_files(&out);
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn outputs_inside_the_input_are_not_hashed_and_an_input_inside_out_is_refused() {
    let input = copy_of_section("in-input");
    let out = input.join("results");
    ok(&kmeans(&input, &out, &[]));
    let first = std::fs::read(out.join("run.json")).unwrap();
    let hashes = |b: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(b).unwrap();
        v["input_sha256"].clone()
    };
    let h = hashes(&first);
    assert!(
        !h.to_string().contains("results"),
        "outputs hashed as inputs: {h}"
    );
    ok(&kmeans(&input, &out, &[]));
    assert_eq!(hashes(&std::fs::read(out.join("run.json")).unwrap()), h);
    // --out that contains the input would be replaced by the run.
    let o = kmeans(&out.join("clusters.csv"), &out, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("contains the input"));
    std::fs::remove_dir_all(&input).unwrap();
}

#[test]
fn smooth_and_embed_swap_their_folders_in_whole_and_refuse_foreign_ones() {
    let input = section();
    for (cmd, extra) in [
        (
            "smooth",
            &[
                "--gat-epochs",
                "1",
                "--gat-hidden",
                "4",
                "--gat-latent",
                "2",
            ][..],
        ),
        (
            "embed",
            &["--gat-epochs", "1", "--warmup-epochs", "1", "--batch", "16"][..],
        ),
    ] {
        let out = tmp(&format!("{cmd}-out"));
        let go = || {
            darlc()
                .args([cmd, "--quiet", "--input"])
                .arg(&input)
                .arg("--out")
                .arg(&out)
                .args(extra)
                .output()
                .unwrap()
        };
        ok(&go());
        // A rerun replaces the folder darlc wrote.
        ok(&go());
        assert_no_temp_files(&out);
        std::fs::remove_dir_all(&out).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("notes.txt"), "mine").unwrap();
        let o = go();
        assert!(!o.status.success(), "{cmd} wrote into a foreign folder");
        assert_eq!(
            std::fs::read_to_string(out.join("notes.txt")).unwrap(),
            "mine"
        );
        assert!(!staging(&out).exists());
        std::fs::remove_dir_all(&out).unwrap();
    }
}

/// An interrupted `darlc embed` says to continue with its own command and `--resume`, which
/// gives the uninterrupted embed's files (on another thread count); `darlc run --resume` refuses
/// its checkpoint and names the embed command; `--force` discards it.
#[test]
fn an_interrupted_embed_resumes_with_embed_resume() {
    let input = section();
    let embed = |out: &Path, threads: &str, extra: &[&str]| {
        let mut c = darlc();
        c.env("RAYON_NUM_THREADS", threads)
            .env_remove("DARLC_STOP_AFTER")
            .args(["embed", "--quiet", "--preset", "tiny", "--input"])
            .arg(&input)
            .arg("--out")
            .arg(out)
            .args(["--warmup-epochs", "3"])
            .args(extra);
        c
    };
    let reference = tmp("embed-reference");
    let o = embed(&reference, "2", &[]).output().unwrap();
    ok(&o);
    // embed does not cluster, so it says nothing of K.
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("K ="), "embed printed a K: {err}");
    let out = tmp("embed-interrupted");
    let o = embed(&out, "2", &[])
        .env("DARLC_STOP_AFTER", "warm-up:1.5")
        .output()
        .unwrap();
    failed_saying(&o, &["Continue with: darlc embed", "--resume"]);
    let o = darlc()
        .args(["run", "--resume"])
        .arg(&out)
        .output()
        .unwrap();
    failed_saying(&o, &["interrupted `darlc embed`", "--resume"]);
    ok(&embed(&out, "1", &["--resume"]).output().unwrap());
    assert_same_run(&reference, &out, "embed resumed after warm-up step 1.5");
    assert_no_temp_files(&out);
    // --force discards an interrupted embed's checkpoint.
    let o = embed(&out, "2", &[])
        .env("DARLC_STOP_AFTER", "warm-up:1")
        .output()
        .unwrap();
    assert!(!o.status.success());
    ok(&embed(&out, "2", &["--force"]).output().unwrap());
    assert!(!staging(&out).exists());
}
