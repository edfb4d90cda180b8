//! The outside world: atomic writes, safetensors files with named tensors, hashing for provenance,
//! and the opening of every text input ([`source`]: gzip sniffed from the magic bytes, byte-order
//! marks, delimiters, line-numbered errors), used by `data`, `eval` and the config alike.
//!
//! Every output darlc writes goes through [`atomic_write`]: the bytes land in a temporary file in
//! the same folder, which is renamed over the final name only when complete, so an interrupted run
//! never leaves a file that looks finished.

pub mod canvas;
pub mod h5ad;
pub mod picture;
pub mod source;
pub mod tensors;

pub use tensors::{TensorData, TensorFile};

use crate::error::{DarlcError, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically (temp file in the same folder, fsync, rename).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Stream content into `path` atomically: `fill` writes into a buffered temporary file, which is
/// renamed over `path` only if `fill` succeeds.
pub fn atomic_write_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| DarlcError::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{}.tmp-{}", name, std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let f = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w)?;
        w.flush()?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(DarlcError::io(path, e));
    }
    Ok(())
}

/// SHA-256 of a file's bytes, hex encoded (for `run.json` input hashes).
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| DarlcError::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = std::io::Read::read(&mut f, &mut buf).map_err(|e| DarlcError::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{:02x}", b)).collect())
}

/// Pretty JSON with a trailing newline, written atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(value)
        .map_err(|e| DarlcError::Data(format!("cannot serialise {}: {}", path.display(), e)))?;
    s.push('\n');
    atomic_write(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("darlc-io-{}", std::process::id()));
        let p = dir.join("a.txt");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp-")
            })
            .collect();
        assert!(leftovers.is_empty());
        // A failing writer leaves the old content in place.
        let r = atomic_write_with(&p, |_| Err(std::io::Error::other("boom")));
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
