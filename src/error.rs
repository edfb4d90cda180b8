//! One error type for the whole crate: every failure a user can cause names the file, line,
//! field or parameter at fault and says what to do (modelled on linfa's `errors.rs`).

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors that darlc reports to a user. `main` prints them and exits non-zero; nothing panics on
/// bad input.
#[derive(Debug)]
pub enum DarlcError {
    /// An input file is malformed. `line` is 1-based when known.
    Format {
        path: PathBuf,
        line: Option<usize>,
        msg: String,
    },
    /// An I/O failure on a named file.
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A parameter (CLI flag, config key) has a value darlc cannot use.
    Param { name: String, msg: String },
    /// The data are valid but cannot be processed as asked (empty after filtering, K > N, …).
    Data(String),
    /// A numerical failure that method §16 says must be reported (Cholesky failure, σ collapse, NaN).
    Numerical(String),
    /// A comparison (fixtures check, verify) found mismatches.
    Mismatch(String),
    /// The run stopped on request (SIGTERM, SIGINT) after writing a checkpoint; `msg` says how to
    /// resume. `main` exits with 128 + `signal`, as a process killed by that signal would.
    Interrupted { msg: String, signal: i32 },
}

/// The crate-wide result type.
pub type Result<T> = std::result::Result<T, DarlcError>;

impl DarlcError {
    /// A format error at `path`, optionally at a 1-based `line`.
    pub fn format(path: impl AsRef<Path>, line: Option<usize>, msg: impl Into<String>) -> Self {
        DarlcError::Format {
            path: path.as_ref().to_path_buf(),
            line,
            msg: msg.into(),
        }
    }
    /// An I/O error while touching `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        DarlcError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    /// A bad parameter value.
    pub fn param(name: impl Into<String>, msg: impl Into<String>) -> Self {
        DarlcError::Param {
            name: name.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for DarlcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DarlcError::Format {
                path,
                line: Some(l),
                msg,
            } => write!(f, "{}:{}: {}", path.display(), l, msg),
            DarlcError::Format {
                path,
                line: None,
                msg,
            } => write!(f, "{}: {}", path.display(), msg),
            DarlcError::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            DarlcError::Param { name, msg } => write!(f, "parameter `{}`: {}", name, msg),
            DarlcError::Data(m) => write!(f, "data: {}", m),
            DarlcError::Numerical(m) => write!(f, "numerical failure: {}", m),
            DarlcError::Mismatch(m) => write!(f, "mismatch: {}", m),
            DarlcError::Interrupted { msg, .. } => write!(f, "interrupted: {}", msg),
        }
    }
}

impl std::error::Error for DarlcError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DarlcError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
