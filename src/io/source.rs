//! Opening input files: gzip sniffed from the magic bytes (never from the name), a line reader that
//! counts 1-based lines for error messages, and a CSV reader whose errors name file and line.

use crate::error::{DarlcError, Result};
use flate2::read::MultiGzDecoder;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// True if the file starts with `magic` (false for a shorter file).
pub fn starts_with(path: &Path, magic: &[u8]) -> Result<bool> {
    let mut f = File::open(path).map_err(|e| DarlcError::io(path, e))?;
    let mut head = vec![0u8; magic.len()];
    let mut got = 0;
    while got < head.len() {
        let n = f
            .read(&mut head[got..])
            .map_err(|e| DarlcError::io(path, e))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    Ok(got == head.len() && head == magic)
}

/// True if the file starts with the gzip magic bytes `1f 8b`.
pub fn is_gzip(path: &Path) -> Result<bool> {
    starts_with(path, &[0x1f, 0x8b])
}

/// The 8-byte signature at the start of every HDF5 file (at offset 0 when it has no user block).
pub const HDF5_SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// True if the file starts with the HDF5 signature (a 10x `.h5` count matrix, for example).
pub fn is_hdf5(path: &Path) -> Result<bool> {
    starts_with(path, HDF5_SIGNATURE)
}

/// The UTF-8 byte-order mark that some editors (Excel, Notepad) put at the start of a text file.
pub const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Skip a UTF-8 byte-order mark at the start of `r`: left in place it would become part of the
/// first header field or id (`\u{feff}barcode`) and make a valid file fail with the wrong
/// diagnosis (issue 24). Every text reader of darlc goes through here.
pub fn skip_bom(path: &Path, mut r: Box<dyn BufRead>) -> Result<Box<dyn BufRead>> {
    let head = r.fill_buf().map_err(|e| read_error(path, 1, &e))?;
    if head.starts_with(UTF8_BOM) {
        r.consume(UTF8_BOM.len());
    }
    Ok(r)
}

/// Text with a leading UTF-8 byte-order mark removed (for files read whole, e.g. JSON).
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// A buffered reader over the file's text, decompressing if it is gzip; a leading UTF-8
/// byte-order mark is skipped.
pub fn open_text(path: &Path) -> Result<Box<dyn BufRead>> {
    let gz = is_gzip(path)?;
    let f = File::open(path).map_err(|e| DarlcError::io(path, e))?;
    let r: Box<dyn BufRead> = if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(f)),
        ))
    } else {
        Box::new(BufReader::with_capacity(1 << 16, f))
    };
    skip_bom(path, r)
}

/// Explain an I/O error met while reading (most often a truncated or corrupt gzip stream).
pub fn read_error(path: &Path, line: usize, e: &std::io::Error) -> DarlcError {
    DarlcError::format(
        path,
        Some(line),
        format!("cannot read the file here (truncated or corrupt gzip data?): {e}"),
    )
}

/// Lines of a text file, with their 1-based numbers, without the line terminator.
pub struct LineReader {
    path: PathBuf,
    inner: Box<dyn BufRead>,
    buf: Vec<u8>,
    line: usize,
}

impl LineReader {
    /// Open `path` (plain or gzip).
    pub fn open(path: &Path) -> Result<Self> {
        Ok(LineReader {
            path: path.to_path_buf(),
            inner: open_text(path)?,
            buf: Vec::with_capacity(256),
            line: 0,
        })
    }

    /// Read the next line into the buffer; `false` at the end of the file. The line (without
    /// `\n` / `\r\n`) is then [`LineReader::current`].
    pub fn advance(&mut self) -> Result<bool> {
        self.buf.clear();
        let n = self
            .inner
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| read_error(&self.path, self.line + 1, &e))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        Ok(true)
    }

    /// The line last read by [`LineReader::advance`].
    pub fn current(&self) -> &[u8] {
        &self.buf
    }

    /// The next line's bytes (without `\n` / `\r\n`), or `None` at the end of the file.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>> {
        Ok(if self.advance()? {
            Some(&self.buf)
        } else {
            None
        })
    }

    /// The next line as UTF-8 text.
    pub fn next_str(&mut self) -> Result<Option<&str>> {
        let line = self.line + 1;
        let path = self.path.clone();
        match self.next_line()? {
            None => Ok(None),
            Some(b) => std::str::from_utf8(b)
                .map(Some)
                .map_err(|_| DarlcError::format(&path, Some(line), "not UTF-8 text")),
        }
    }

    /// 1-based number of the line last returned.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A format error at the line last returned.
    pub fn err(&self, msg: impl Into<String>) -> DarlcError {
        DarlcError::format(&self.path, Some(self.line), msg)
    }
}

/// The first line of a text file (plain or gzip), or `None` if it is empty.
pub fn first_line(path: &Path) -> Result<Option<String>> {
    let mut r = LineReader::open(path)?;
    Ok(r.next_str()?.map(|s| s.to_string()))
}

/// The field delimiter of a table, sniffed from its first line: tab if it has more tabs than
/// commas, else comma.
pub fn sniff_delimiter(first: &str) -> u8 {
    let tabs = first.bytes().filter(|&b| b == b'\t').count();
    let commas = first.bytes().filter(|&b| b == b',').count();
    if tabs > commas { b'\t' } else { b',' }
}

/// A CSV/TSV reader over a plain or gzip file. Records must all have the same number of fields.
pub fn open_csv(
    path: &Path,
    delimiter: u8,
    has_headers: bool,
) -> Result<csv::Reader<Box<dyn BufRead>>> {
    let r = open_text(path)?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(has_headers)
        .flexible(false)
        .from_reader(r))
}

/// Turn a `csv` error into a format error naming the file and line.
pub fn csv_error(path: &Path, e: csv::Error) -> DarlcError {
    let line = e.position().map(|p| p.line() as usize);
    let msg = match e.kind() {
        csv::ErrorKind::Io(io) => {
            format!("cannot read the file here (truncated or corrupt gzip data?): {io}")
        }
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("{len} fields where the first row has {expected_len}")
        }
        _ => e.to_string(),
    };
    DarlcError::format(path, line, msg)
}

/// 1-based line of a CSV record (the header is line 1 when there is one).
pub fn record_line(rec: &csv::StringRecord) -> Option<usize> {
    rec.position().map(|p| p.line() as usize)
}

/// Find `stem` or `stem.gz` in `dir`.
pub fn find_maybe_gz(dir: &Path, stem: &str) -> Option<PathBuf> {
    let plain = dir.join(stem);
    if plain.is_file() {
        return Some(plain);
    }
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Some(gz);
    }
    None
}

/// Parse a non-negative finite number (a count or intensity) from a field; the error says why not.
pub fn parse_nonneg(field: &str) -> std::result::Result<f64, String> {
    let t = field.trim();
    let v: f64 = t.parse().map_err(|_| format!("`{t}` is not a number"))?;
    if v.is_nan() {
        return Err(format!("`{t}` is NaN"));
    }
    if v.is_infinite() {
        return Err(format!("`{t}` is infinite"));
    }
    if v < 0.0 {
        return Err(format!(
            "`{t}` is negative; counts and intensities must be ≥ 0"
        ));
    }
    Ok(v)
}

/// Parse a finite coordinate, at most 1e12 in magnitude.
pub fn parse_finite(field: &str) -> std::result::Result<f64, String> {
    let t = field.trim();
    let v: f64 = t.parse().map_err(|_| format!("`{t}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("`{t}` is not a finite number"));
    }
    if v.abs() > 1e12 {
        return Err(format!("`{t}` is out of range (|value| ≤ 1e12)"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_plain_and_gzip_lines_with_numbers() {
        let dir = std::env::temp_dir().join(format!("darlc-src-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("a.txt");
        std::fs::write(&plain, b"one\r\ntwo\n\nthree").unwrap();
        let gz = dir.join("a.txt.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(b"one\r\ntwo\n\nthree").unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        for p in [&plain, &gz] {
            let mut r = LineReader::open(p).unwrap();
            let mut got = vec![];
            while let Some(l) = r.next_str().unwrap() {
                got.push(l.to_string());
            }
            assert_eq!(got, vec!["one", "two", "", "three"]);
            assert_eq!(r.line(), 4);
        }
        assert!(is_gzip(&gz).unwrap());
        assert!(!is_gzip(&plain).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn number_parsing_rejects_bad_values() {
        assert_eq!(parse_nonneg(" 3 ").unwrap(), 3.0);
        assert!(parse_nonneg("-1").unwrap_err().contains("negative"));
        assert!(parse_nonneg("NaN").unwrap_err().contains("NaN"));
        assert!(parse_nonneg("abc").unwrap_err().contains("not a number"));
        assert!(parse_nonneg("inf").unwrap_err().contains("infinite"));
        assert!(parse_finite("1e400").is_err());
    }

    #[test]
    fn a_byte_order_mark_is_skipped_in_plain_and_gzip_files() {
        let dir = std::env::temp_dir().join(format!("darlc-bom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let text = b"\xEF\xBB\xBFbarcode\tx\nA\t1\n";
        let plain = dir.join("b.tsv");
        std::fs::write(&plain, text).unwrap();
        let gz = dir.join("b.tsv.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(text).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        for p in [&plain, &gz] {
            assert_eq!(first_line(p).unwrap().unwrap(), "barcode\tx");
            let mut r = open_csv(p, b'\t', true).unwrap();
            assert_eq!(r.headers().unwrap().get(0), Some("barcode"));
        }
        assert_eq!(strip_bom("\u{feff}{}"), "{}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn delimiter_sniffing() {
        assert_eq!(sniff_delimiter("a\tb\tc"), b'\t');
        assert_eq!(sniff_delimiter("a,b,c"), b',');
    }
}
