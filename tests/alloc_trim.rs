//! `release_freed_memory` (malloc_trim) hands freed memory back under `retain_freed_memory`.
//! A test binary of its own: the resident set is per process, and other tests allocating at the
//! same time would blur it.

use darlc::memory::{proc_status_bytes, release_freed_memory, retain_freed_memory};

/// `VmRSS` of this process in MB (Linux).
fn rss_mb() -> Option<f64> {
    Some(proc_status_bytes("VmRSS")? as f64 / 1e6)
}

/// 256 MiB in 2 MiB blocks, every other one freed: the freed half stays resident under
/// `retain_freed_memory` (glibc keeps it on the heap) and leaves after `release_freed_memory`,
/// the live half stays (on other targets both calls are no-ops that report `false`).
#[test]
fn release_returns_a_freed_block_to_the_kernel() {
    if !retain_freed_memory() {
        assert!(!release_freed_memory());
        return;
    }
    let before = rss_mb().unwrap();
    // 128 blocks of 2 MiB: below the 64 MiB heap size of a thread arena (a test runs on a
    // worker thread), so glibc serves them from its heaps, as it does the training's blocks;
    // a single block larger than an arena's heap would be mmapped whatever the settings.
    let mut v: Vec<Vec<u8>> = (0..128).map(|_| vec![1u8; 2 << 20]).collect();
    let held = rss_mb().unwrap();
    // Free every other block: the holes lie between live blocks, where glibc keeps them.
    let mut i = 0;
    v.retain(|_| {
        i += 1;
        i % 2 == 0
    });
    v = std::hint::black_box(v);
    let freed = rss_mb().unwrap();
    assert!(release_freed_memory());
    let trimmed = rss_mb().unwrap();
    println!("RSS MB: before {before:.0}, held {held:.0}, freed {freed:.0}, trimmed {trimmed:.0}");
    // 128 MiB = 134 MB freed: resident after the free (retained), released by the trim, while
    // the other half stays live.
    assert!(held - before > 250.0, "{held} vs {before}");
    assert!(
        freed - before > 250.0,
        "freed blocks not retained: {freed} vs {before}"
    );
    assert!(
        freed - trimmed > 120.0,
        "not released: {freed} -> {trimmed}"
    );
    assert!(
        trimmed - before > 120.0,
        "live blocks lost: {trimmed} vs {before}"
    );
    assert_eq!(v.len(), 64);
}
