//! Per-op wall-time profile of the tape (off by default; `darlc bench ssl-step --profile` turns it
//! on). A forward op is charged the time since the previous node was pushed on any tape of the
//! same thread (ops compute their value right before they push it, so the gap is the op's own time
//! plus any caller code in between; `leaf` collects the time spent outside ops); a backward op is charged its `backward_node` call, gradient accumulation
//! included. Profiling reads clocks only: it changes no result.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Accumulated `(time, calls)` per `(pass, op)`.
type Table = BTreeMap<(&'static str, &'static str), (Duration, usize)>;
static TABLE: Mutex<Table> = Mutex::new(BTreeMap::new());

thread_local! {
    static LAST_PUSH: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Charge the time since this thread's previous push to the forward op `op`.
pub fn gap(op: &'static str) {
    let now = Instant::now();
    if let Some(t0) = LAST_PUSH.with(|c| c.replace(Some(now))) {
        record("fwd", op, now - t0);
    }
}

/// Restart this thread's gap clock (the next push is not charged for the time before now).
pub fn restart_clock() {
    LAST_PUSH.with(|c| c.set(None));
}

/// Turn recording on or off (process-wide).
pub fn set_enabled(on: bool) {
    LAST_PUSH.with(|c| c.set(None));
    ENABLED.store(on, Ordering::Relaxed);
}

/// Whether ops are being timed.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Charge `d` to `(pass, op)`; `pass` is `"fwd"` or `"bwd"`.
pub fn record(pass: &'static str, op: &'static str, d: Duration) {
    if let Ok(mut t) = TABLE.lock() {
        let e = t.entry((pass, op)).or_default();
        e.0 += d;
        e.1 += 1;
    }
}

/// Print (stderr) and clear the table as seconds per repetition, for `reps` repetitions of the
/// profiled work; ops under 2 ms per repetition are left out.
pub fn print(reps: usize) {
    let rows = take();
    let total: f64 = rows.iter().map(|r| r.2).sum();
    let per = 1.0 / reps.max(1) as f64;
    eprintln!("per-op wall time (forward = time since the previous node):");
    for (pass, op, s, n) in rows {
        if s * per < 0.002 {
            continue;
        }
        eprintln!(
            "  {pass} {op:<22} {:8.3} s {:5.1} %  {:6.0} calls",
            s * per,
            100.0 * s / total,
            n as f64 * per
        );
    }
    eprintln!("  total {:.3} s", total * per);
}

/// Take and clear the table: `(pass, op, seconds, calls)`, largest time first.
pub fn take() -> Vec<(&'static str, &'static str, f64, usize)> {
    let mut t = match TABLE.lock() {
        Ok(t) => t,
        Err(p) => p.into_inner(),
    };
    let mut v: Vec<_> = std::mem::take(&mut *t)
        .into_iter()
        .map(|((p, o), (d, n))| (p, o, d.as_secs_f64(), n))
        .collect();
    v.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(b.0)).then(a.1.cmp(b.1)));
    v
}
