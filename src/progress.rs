//! Progress reporting shared by the long phases (GAT, warm-up, joint): indicatif bars on a
//! terminal, and one plain line per epoch (or per tenth of the GAT's epochs) when stderr is a
//! file, as in a batch job, where indicatif hides its bars.

/// `[darlc] text` on stderr when it is not a terminal (a batch job's log file), where the
/// progress bars stay hidden.
pub fn batch_job_line(text: &str) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        eprintln!("[darlc] {text}");
    }
}

/// Remaining time of a phase from the mean epoch time so far.
pub struct Eta {
    epochs: usize,
    done: usize,
    seconds: f64,
}

impl Eta {
    pub fn new(epochs: usize) -> Self {
        Eta {
            epochs,
            done: 0,
            seconds: 0.0,
        }
    }

    /// Record one finished epoch of `seconds`.
    pub fn record(&mut self, seconds: f64) {
        self.done += 1;
        self.seconds += seconds;
    }

    /// `"; about … left"` from the mean epoch time so far (empty when no epoch is left).
    pub fn left(&self) -> String {
        let left = self.epochs.saturating_sub(self.done);
        if left == 0 || self.done == 0 {
            return String::new();
        }
        let s = self.seconds / self.done as f64 * left as f64;
        if s >= 120.0 {
            format!("; about {:.0} min left", s / 60.0)
        } else {
            format!("; about {s:.0} s left")
        }
    }

    /// [`Self::record`] then [`Self::left`].
    pub fn after(&mut self, seconds: f64) -> String {
        self.record(seconds);
        self.left()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_extrapolates_the_mean_epoch_time() {
        let mut e = Eta::new(4);
        // 1 epoch of 30 s done, 3 left: 90 s.
        assert_eq!(e.after(30.0), "; about 90 s left");
        // mean (30 + 90)/2 = 60 s, 2 left: 120 s = 2 min.
        assert_eq!(e.after(90.0), "; about 2 min left");
        e.after(60.0);
        assert_eq!(e.after(60.0), "");
    }
}
