//! The worker-thread count of a command: results never depend on it (GUIDE: 1 vs N threads give
//! the same bits), only the time does.

use crate::error::{DarlcError, Result};

/// Run `f` with `threads` rayon workers: the global pool is configured on first use (so `f` runs
/// on the calling thread), otherwise a dedicated pool is installed. `None` keeps the default.
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R> {
    match threads {
        None => Ok(f()),
        Some(0) => Err(DarlcError::param("--threads", "must be at least 1")),
        Some(n) => {
            if rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .is_ok()
                || rayon::current_num_threads() == n
            {
                return Ok(f());
            }
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| DarlcError::param("--threads", e.to_string()))?;
            Ok(pool.install(f))
        }
    }
}
