//! The program's allocator policy and memory accounting, on the ground floor: every layer that
//! sets the policy (`main`, `darlc run` between phases, the benchmarks) or reports a peak resident
//! set (run.json, the benchmarks) imports it from here.
//!
//! Allocator setting that keeps large freed blocks in the process (glibc only).
//!
//! glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh `mmap` and
//! returns it with `munmap` on free, so each tape step that allocates a `[57600, 256]` f32
//! activation or gradient pays a page fault per 4 KiB page (plus the kernel zeroing the page) —
//! measured at roughly half the time of the GEMM itself at the ViT sizes. Disabling mmap for
//! allocations and trimming keeps freed blocks on the heap for reuse. This changes no result; it
//! only changes where memory comes from.

/// Ask glibc to serve all allocations from its heaps and never return freed memory to the kernel
/// (`mallopt(M_MMAP_MAX, 0)`, `mallopt(M_TRIM_THRESHOLD, i32::MAX)`). Returns `true` if applied
/// (glibc targets), `false` elsewhere. Call it once, early; allocations already made with mmap are
/// unaffected.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_MAX: i32 = -4;
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: mallopt only changes glibc malloc tunables; both parameters are documented and
        // take an int. It returns 1 on success.
        unsafe { mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, i32::MAX) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Hand the freed memory of every glibc arena back to the kernel (`malloc_trim(0)`), keeping the
/// live allocations. With [`retain_freed_memory`] in effect, freed blocks otherwise stay resident
/// for the rest of the process, and blocks freed in one thread's arena are not reused by another
/// thread's allocations: what a later phase allocates then adds to the earlier phase's peak.
/// Call it between phases (e.g. after training, before the outputs are built). Returns `true` if
/// memory was released, `false` if none was or on other targets. Changes no result.
pub fn release_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes the number of
        // bytes to leave untrimmed at the top of the main heap and returns 1 if it released any.
        unsafe { malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// A `kB` field of `/proc/self/status` (e.g. `VmHWM`, the peak resident set, or `VmRSS`, the
/// current one), in bytes; `None` where the file or field is missing (non-Linux targets).
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let rest = s
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of the current process (`VmHWM` in `/proc/self/status`), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    proc_status_bytes("VmHWM")
}

/// Peak resident set size of this process in MB (`VmHWM`), if readable.
pub fn peak_rss_mb() -> Option<f64> {
    Some(proc_status_bytes("VmHWM")? as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::proc_status_bytes;

    /// The peak resident set is never below the current one, and a missing field is `None`
    /// (the prefix must be the whole field name: `VmHWMx` does not match `VmHWM`).
    #[test]
    fn proc_status_reads_fields_by_exact_name() {
        // The current RSS first: read after it, the peak can only be higher (other test threads
        // allocate between the two reads, so the other order races).
        let now = proc_status_bytes("VmRSS");
        if let (Some(peak), Some(now)) = (proc_status_bytes("VmHWM"), now) {
            assert!(peak >= now, "{peak} < {now}");
            assert!(now > 0);
        }
        assert_eq!(proc_status_bytes("VmHWMx"), None);
        assert_eq!(proc_status_bytes("Vm"), None);
    }
}
