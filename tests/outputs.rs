//! What a scientist opens after `darlc run` (issue 25): gene tables with symbols, `modules.csv`,
//! spots placed on the stored images, the pictures, and `report.html` rendered in a real browser
//! (headless Chromium, which CI installs; set `DARLC_SKIP_BROWSER=1` to skip that one check where
//! no browser can be installed).

use darlc::io::TensorFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod pipeline_common;

use pipeline_common::darlc;

/// One DARLC run (tiny preset) on the simulated section, shared by the tests of this file. On a
/// 75×75 canvas the 72×61 tissue sits at offset (1, 7), so the stored images are cropped at a
/// non-zero offset (with the tissue-fitted canvas the offset is 0 and the crop bug hid).
fn run_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let input = pipeline_common::section("outputs");
        let out = pipeline_common::tmp("outputs", "darlc");
        tiny_run(&input, &out, &["--canvas", "75"]);
        out
    })
}

/// `darlc run --preset tiny` on `input` into `out` with `extra` flags; it must succeed.
fn tiny_run(input: &Path, out: &Path, extra: &[&str]) {
    let o = darlc()
        .args(["run", "--preset", "tiny", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn csv_rows(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rd = csv::Reader::from_path(p).unwrap();
    let header = rd.headers().unwrap().iter().map(String::from).collect();
    let rows = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

fn png_size(p: &Path) -> (u32, u32) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(p).unwrap()));
    let r = dec.read_info().unwrap();
    (r.info().width, r.info().height)
}

#[test]
fn gene_tables_carry_symbols_and_modules_csv_lists_every_gene_once() {
    let out = run_dir();
    let (gh, genes) = csv_rows(&out.join("genes.csv"));
    assert_eq!(gh, ["index", "gene_id", "symbol", "label"]);
    let (ch, clusters) = csv_rows(&out.join("clusters.csv"));
    assert_eq!(ch, ["gene_id", "symbol", "cluster", "confidence"]);
    assert_eq!(clusters.len(), genes.len());
    for (g, c) in genes.iter().zip(&clusters) {
        assert_eq!(
            (&g[1], &g[2]),
            (&c[0], &c[1]),
            "clusters.csv follows genes.csv"
        );
    }
    let (eh, emb) = csv_rows(&out.join("embeddings.csv"));
    assert_eq!(&eh[..3], ["gene_id", "symbol", "z0"]);
    assert!(
        emb.iter()
            .zip(&genes)
            .all(|(e, g)| e[0] == g[1] && e[1] == g[2])
    );

    // modules.csv: per non-empty cluster its size and members, highest confidence first.
    let (mh, modules) = csv_rows(&out.join("modules.csv"));
    assert_eq!(
        mh,
        [
            "cluster",
            "size",
            "sam",
            "quality",
            "mean_confidence",
            "symbols",
            "gene_ids"
        ]
    );
    let by_id: BTreeMap<&str, (&str, &str, f64)> = clusters
        .iter()
        .map(|c| {
            (
                c[0].as_str(),
                (c[1].as_str(), c[2].as_str(), c[3].parse().unwrap()),
            )
        })
        .collect();
    let mut seen = 0;
    for m in &modules {
        let ids: Vec<&str> = m[6].split(';').collect();
        let symbols: Vec<&str> = m[5].split(';').collect();
        assert_eq!(ids.len(), m[1].parse::<usize>().unwrap(), "size = members");
        assert_eq!(symbols.len(), ids.len());
        let sam: f64 = m[2]
            .parse()
            .expect("SAM of every cluster (images are known)");
        assert!(sam.is_finite() && sam >= 0.0);
        assert!(m[3] == "high" || m[3] == "medium");
        let mut last = f64::INFINITY;
        for (id, sym) in ids.iter().zip(&symbols) {
            let (s, cl, conf) = by_id[id];
            assert_eq!((s, cl), (*sym, m[0].as_str()), "{id}");
            assert!(conf <= last, "cluster {}: members by confidence", m[0]);
            last = conf;
        }
        seen += ids.len();
    }
    assert_eq!(seen, genes.len(), "every gene in exactly one module");
}

/// The crop-offset bug of issue 25: `spots.csv` gave canvas coordinates while the stored images
/// are cropped to the tissue. Each spot's pixel must be a tissue pixel of the stored images, the
/// tissue is exactly the spots, and every non-zero value lies on a spot.
#[test]
fn spot_pixels_index_the_stored_images() {
    let out = run_dir();
    let f = TensorFile::load(&out.join("images.safetensors")).unwrap();
    let images = f
        .get("images", &out.join("images.safetensors"))
        .unwrap()
        .to_f64();
    let mask = f
        .get("mask", &out.join("images.safetensors"))
        .unwrap()
        .to_f64();
    let (h, w) = (mask.shape()[0], mask.shape()[1]);
    let (sh, spots) = csv_rows(&out.join("spots.csv"));
    assert_eq!(&sh[..3], ["spot_id", "pixel_row", "pixel_col"]);
    let mut on_spot = vec![false; h * w];
    for s in &spots {
        let (r, c): (usize, usize) = (s[1].parse().unwrap(), s[2].parse().unwrap());
        assert!(
            r < h && c < w,
            "spot {} at ({r}, {c}) outside the {h}×{w} images",
            s[0]
        );
        assert_eq!(mask[[r, c]], 1.0, "spot {} is not on a tissue pixel", s[0]);
        on_spot[r * w + c] = true;
    }
    assert_eq!(
        mask.iter().filter(|&&m| m != 0.0).count(),
        spots.len(),
        "the tissue is the spots"
    );
    let n = images.shape()[0];
    let mut nonzero = 0;
    for g in 0..n {
        for r in 0..h {
            for c in 0..w {
                if images[[g, 0, r, c]] != 0.0 {
                    assert!(
                        on_spot[r * w + c],
                        "gene {g}: value off the spots at ({r}, {c})"
                    );
                    nonzero += 1;
                }
            }
        }
    }
    assert!(nonzero > n, "the images are not empty");
}

#[test]
fn pictures_are_written_and_listed() {
    let out = run_dir();
    let rj: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    let listed: Vec<&str> = rj["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in ["clusters.png", "modules.png", "modules.csv", "report.html"] {
        assert!(out.join(f).is_file(), "missing {f}");
        assert!(listed.contains(&f), "run.json does not list {f}");
    }
    let (_, modules) = csv_rows(&out.join("modules.csv"));
    // clusters.png: a heading, then one row per cluster; modules.png: maps in 4 columns.
    let (_, ch) = png_size(&out.join("clusters.png"));
    assert!(
        ch as usize > 60 + 100 * modules.len().min(20),
        "clusters.png {ch} px high"
    );
    let (mw, _) = png_size(&out.join("modules.png"));
    assert!(mw > 400, "modules.png {mw} px wide");
}

/// `report.html` opens in headless Chromium: the screenshot has the window's size and is not
/// blank, the page has one card per cluster, and the browser logs no console error.
#[test]
fn report_renders_in_headless_chromium() {
    let out = run_dir();
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let (_, modules) = csv_rows(&out.join("modules.csv"));
    assert_eq!(
        html.matches("<section class=\"card\"").count(),
        modules.len()
    );
    assert!(html.contains("<svg"), "loss curves");
    // Every embedded picture is a PNG that decodes.
    let mut pictures = 0;
    for part in html.split("data:image/png;base64,").skip(1) {
        let b64 = &part[..part.find('"').unwrap()];
        let bytes = decode_base64(b64);
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        dec.read_info().expect("embedded PNG decodes");
        pictures += 1;
    }
    assert_eq!(
        pictures,
        2 * modules.len(),
        "a module map and a montage per card"
    );

    if std::env::var_os("DARLC_SKIP_BROWSER").is_some() {
        eprintln!("DARLC_SKIP_BROWSER set: not rendering report.html");
        return;
    }
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect(
            "no Chromium found: install Debian's `chromium` (CI's .ci/run does), or set \
             DARLC_SKIP_BROWSER=1",
        );
    let shot = out.with_extension("report.png");
    let profile = out.with_extension("chromium-profile");
    let o = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "chromium failed:\n{log}");
    let console: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console.is_empty(),
        "console messages:\n{}",
        console.join("\n")
    );
    assert_eq!(png_size(&shot), (1280, 2400));
    // Rendered, not blank: many pixels that are neither white nor one flat colour.
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0u8; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let inked = buf[..info.buffer_size()]
        .chunks(ch)
        .filter(|p| p[..3] != [255, 255, 255])
        .count();
    let total = (1280 * 2400) as usize;
    assert!(inked > total / 50, "only {inked} of {total} pixels drawn");
    eprintln!("screenshot: {}", shot.display());
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    } as u32;
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::new();
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | val(c) << (18 - 6 * i));
        for k in 0..chunk.len().saturating_sub(1) {
            out.push((n >> (16 - 8 * k)) as u8);
        }
    }
    out
}

/// On a Space Ranger folder with `spatial/` images (the 10x HDF5 fixture), the module maps are
/// drawn over the H&E image: its tissue colour shows in `modules.png`.
#[test]
fn module_maps_lie_over_the_he_image_where_space_ranger_gives_one() {
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tenx_h5/v3");
    let out = pipeline_common::tmp("outputs", "he");
    tiny_run(&input, &out, &[]);
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("modules.png")).unwrap(),
    ));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0u8; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    // The fixture's tissue pink (226, 160, 196), between and around the spots.
    let pink = buf[..info.buffer_size()]
        .chunks(3)
        .filter(|p| p == &[226, 160, 196])
        .count();
    assert!(
        pink > 500,
        "{pink} tissue-coloured pixels: no H&E under the maps"
    );
}
