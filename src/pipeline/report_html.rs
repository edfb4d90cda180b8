//! `report.html` (issue 25): one self-contained page that says what a run did and what it found:
//! the input and what loading kept, K and how it was chosen, the warnings, phase timings and peak
//! memory, the loss curves per epoch (inline SVG), the metrics, and one card per cluster (its
//! module map, its member montage, its genes and SAM). Pictures are embedded as `data:` URIs and
//! the page runs no script, so it opens from a cluster's file system or an e-mail attachment.
//!
//! Everything on the page is read from what the run writes (`run.json`, `report.json`,
//! `metrics.json`, `log.jsonl`) or from the pictures, so the page cannot disagree with the files.

use super::pictures::{genes_label, short};
use super::summary::Module;
use serde_json::Value;
use std::fmt::Write;

/// One cluster's card: the module and its two pictures (PNG bytes).
pub struct Card {
    pub module: Module,
    /// The module map (sections only).
    pub map_png: Option<Vec<u8>>,
    pub montage_png: Vec<u8>,
}

/// The cards of a run and the gene names they refer to.
pub struct Cards {
    pub cards: Vec<Card>,
    pub ids: Vec<String>,
    pub symbols: Vec<String>,
    pub confidence: Vec<f64>,
}

/// What the page shows.
pub struct Page<'a> {
    /// `run.json` as it is written.
    pub run: &'a Value,
    /// `report.json` (what loading did).
    pub data: &'a Value,
    /// `metrics.json`.
    pub metrics: Option<&'a Value>,
    /// `log.jsonl`.
    pub log: &'a str,
    pub cards: &'a [Card],
    pub ids: &'a [String],
    pub symbols: &'a [String],
    pub confidence: &'a [f64],
}

/// Around the parts of the page that differ between two runs of the same work: the command (its
/// `--out`), the thread count and the phase timings. Outside them a resumed run's page is
/// byte-identical to an uninterrupted run's, as its other files are ([`without_volatile`]).
pub const VOLATILE_START: &str = "<!-- volatile -->";
pub const VOLATILE_END: &str = "<!-- /volatile -->";

/// `page` without its volatile parts (for comparing the pages of two runs).
pub fn without_volatile(page: &str) -> String {
    let mut out = String::with_capacity(page.len());
    let mut rest = page;
    while let Some(i) = rest.find(VOLATILE_START) {
        out.push_str(&rest[..i]);
        match rest[i..].find(VOLATILE_END) {
            Some(j) => rest = &rest[i + j + VOLATILE_END.len()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

/// Genes listed on a card before the rest fold away.
const GENES_OPEN: usize = 30;

/// `s` with `& < > " '` escaped for HTML text and attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding), for `data:` URIs.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn png_img(bytes: &[u8], alt: &str) -> String {
    format!(
        "<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
        escape(alt),
        base64(bytes)
    )
}

/// A JSON value for a table cell.
fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "n/a".into(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => short(x),
            _ => n.to_string(),
        },
        Some(Value::String(s)) => escape(s),
        Some(other) => escape(&other.to_string()),
    }
}

/// How K was chosen, from run.json's `config.module2.clusters`.
fn k_rule(run: &Value) -> String {
    let k = cell(run.get("clusters"));
    let images = cell(run.get("images"));
    let rule = &run["config"]["module2"]["clusters"];
    match rule.get("rule").and_then(Value::as_str) {
        Some("st") => format!(
            "K = {k} = round(N / 30) with N = {images} genes (<code>module2.clusters = st</code>, \
             the paper's default for spatial transcriptomics, method §10)"
        ),
        Some("auto") => format!(
            "K = {k} by the largest eigengap of the similarity graph of the smoothed images \
             (<code>module2.clusters = auto</code>, method §10)"
        ),
        _ => format!(
            "K = {k}, given (<code>module2.clusters = {}</code>)",
            cell(rule.get("k").or(Some(rule)))
        ),
    }
}

/// The loss curves of `log.jsonl`: per key, the values of the warm-up epochs then of the joint
/// epochs, in file order.
fn curves(log: &str) -> Vec<(&'static str, &'static str, Vec<f64>, usize)> {
    const KEYS: [(&str, &str); 10] = [
        (
            "l_ssl",
            "L_SSL, the uncertainty-weighted Module I loss (Eq. 8)",
        ),
        ("l_mim", "L_MIM, masked image modelling (Eq. 5)"),
        (
            "l_cl",
            "L_CL, the contrastive loss (Eq. 6; chance = ln(2B-1))",
        ),
        ("sigma1", "sigma_1, the MIM weight of UWL (Eq. 8)"),
        ("sigma2", "sigma_2, the contrastive weight of UWL (Eq. 8)"),
        ("l_lap", "L_Lap, the Laplacian loss (Eq. 20)"),
        ("l_lh", "L_LH, the likelihood loss (Eq. 21)"),
        ("l_size", "L_size, the cluster-size loss (Eq. 22)"),
        ("l_kl", "L_KL, the self-training loss (Eq. 19)"),
        ("l_e", "L_e, the joint objective (Eq. 26)"),
    ];
    let lines: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    fn epochs<'a>(lines: &'a [Value], phase: &'static str) -> impl Iterator<Item = &'a Value> {
        lines
            .iter()
            .filter(move |v| v["phase"] == phase && v.get("epoch").is_some())
    }
    let epochs = |phase: &'static str| epochs(&lines, phase);
    let warm = epochs("warm-up").count();
    KEYS.iter()
        .filter_map(|&(key, what)| {
            let ys: Vec<f64> = epochs("warm-up")
                .chain(epochs("joint"))
                .filter_map(|v| v.get(key).and_then(Value::as_f64))
                .filter(|y| y.is_finite())
                .collect();
            let in_warm = epochs("warm-up").filter(|v| v.get(key).is_some()).count();
            (!ys.is_empty()).then_some((
                key,
                what,
                ys,
                if in_warm > 0 { in_warm.min(warm) } else { 0 },
            ))
        })
        .collect()
}

/// One loss curve as an inline SVG: points per epoch, a dashed line where the joint phase
/// starts (after `warm` warm-up epochs), the lowest and highest value on the axis.
fn svg_curve(key: &str, ys: &[f64], warm: usize) -> String {
    let (w, h, l, r, t, b) = (300.0, 140.0, 52.0, 8.0, 10.0, 22.0);
    let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let span = if hi > lo { hi - lo } else { 1.0 };
    let n = ys.len();
    let x = |i: usize| {
        l + (w - l - r)
            * if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.5
            }
    };
    let y = |v: f64| t + (h - t - b) * (1.0 - if hi > lo { (v - lo) / span } else { 0.5 });
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         role=\"img\" aria-label=\"{key}\">"
    );
    let _ = write!(
        s,
        "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" stroke=\"#bbb\"/>",
        w - l - r,
        h - t - b
    );
    if warm > 0 && warm < n {
        let xb = (x(warm - 1) + x(warm)) / 2.0;
        let _ = write!(
            s,
            "<line x1=\"{xb:.1}\" y1=\"{t}\" x2=\"{xb:.1}\" y2=\"{}\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>",
            h - b
        );
    }
    let pts: Vec<String> = ys
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = write!(
        s,
        "<polyline fill=\"none\" stroke=\"#3b528b\" stroke-width=\"2\" points=\"{}\"/>",
        pts.join(" ")
    );
    for (i, &v) in ys.iter().enumerate() {
        let colour = if i < warm { "#21918c" } else { "#e07b00" };
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"><title>epoch {i}: {}</title></circle>",
            x(i),
            y(v),
            short(v)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">epoch ({} warm-up, {} joint)</text></svg>",
        l - 4.0,
        t + 9.0,
        short(hi),
        l - 4.0,
        h - b,
        short(lo),
        (l + w - r) / 2.0,
        h - 6.0,
        warm.min(n),
        n - warm.min(n)
    );
    s
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;\
color:#222;max-width:1400px}h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:4px;\
margin-top:32px}table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;\
text-align:left}th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.warn{background:#fff4e0;border-left:4px solid #e07b00;padding:6px 10px;margin:6px 0}\
.curves{display:flex;flex-wrap:wrap;gap:16px}.curves figure{margin:0}\
.curves figcaption{font-size:12px;max-width:300px}.cards{display:flex;flex-wrap:wrap;gap:16px}\
.card{border:1px solid #ccc;border-radius:6px;padding:10px;width:100%;box-sizing:border-box}\
.card h3{margin:0 0 6px 0}.pics{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}\
.card img{max-width:100%}\
.genes{font-size:13px;line-height:1.5}.genes span{white-space:nowrap;margin-right:10px}\
code{background:#f3f3f3;padding:0 3px}";

/// The page.
pub fn render(p: &Page) -> String {
    let run = p.run;
    let mut h = String::new();
    let input = cell(run.get("input"));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>darlc report: {input}</title><style>{STYLE}</style></head><body>\n\
         <h1>darlc report: {input}</h1>\n<p>darlc {} · method <code>{}</code> · seed {}\
         {VOLATILE_START} · {} threads{VOLATILE_END}</p>\n",
        cell(run.get("darlc_version")),
        cell(run["config"].get("method")),
        cell(run["config"].get("seed")),
        cell(run.get("threads")),
    );
    if let Some(cmd) = run["command"].as_array() {
        let cmd: Vec<String> = cmd.iter().map(|v| cell(Some(v))).collect();
        let _ = writeln!(
            h,
            "{VOLATILE_START}<p>command: <code>{}</code></p>{VOLATILE_END}",
            cmd.join(" ")
        );
    }

    // Input.
    let d = p.data;
    h.push_str("<h2 id=\"input\">Input</h2>\n<table>\n");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
    };
    row("input", cell(d.get("input")));
    row("kind", cell(d.get("kind")));
    if let Some(files) = d["files"].as_array() {
        let f: Vec<String> = files.iter().map(|v| cell(Some(v))).collect();
        row("files read", f.join("<br>"));
    }
    if let Some(g) = d.get("genes").filter(|g| !g.is_null()) {
        row(
            "genes",
            format!(
                "{} in; dropped {} not Gene Expression, {} MT-, {} ERCC-, {} in fewer than {} spots; \
                 <b>{} kept</b>",
                cell(g.get("genes_in")),
                cell(g.get("dropped_not_gene_expression")),
                cell(g.get("dropped_mt")),
                cell(g.get("dropped_ercc")),
                cell(g.get("dropped_min_spots")),
                cell(g.get("min_spots")),
                cell(g.get("genes_kept"))
            ),
        );
    }
    row(
        "spots",
        format!(
            "<b>{}</b> kept of {} matrix columns",
            cell(d.get("spots")),
            cell(d.get("items_in"))
        ),
    );
    row(
        "images",
        format!(
            "{} × {} × {} × {} (genes × channels × height × width); non-zero over tissue {}",
            cell(d.get("images")),
            cell(d.get("channels")),
            cell(d.get("height")),
            cell(d.get("width")),
            cell(d.get("nonzero_fraction"))
        ),
    );
    h.push_str("</table>\n");

    // Clusters and warnings.
    h.push_str("<h2 id=\"k\">Clusters</h2>\n");
    let _ = writeln!(h, "<p>{}</p>", k_rule(run));
    if let Some(m) = p.metrics {
        let _ = writeln!(
            h,
            "<p>clusters used by the final fit: {}</p>",
            cell(m.get("clusters"))
        );
    }
    for w in run["warnings"].as_array().into_iter().flatten() {
        let _ = writeln!(h, "<div class=\"warn\">{}</div>", cell(Some(w)));
    }

    // Time and memory.
    h.push_str(
        "<h2 id=\"time\">Time and memory</h2>\n<!-- volatile --><table><tr><th>phase</th><th>seconds</th>\
         <th>peak RSS (MB) at its end</th></tr>\n",
    );
    for ph in run["phases"].as_array().into_iter().flatten() {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            cell(ph.get("name")),
            ph["seconds"]
                .as_f64()
                .map_or("n/a".into(), |s| format!("{s:.1}")),
            ph["peak_rss_mb"]
                .as_f64()
                .map_or("n/a".into(), |s| format!("{s:.0}")),
        );
    }
    h.push_str(
        "</table><!-- /volatile -->\n<p>(<code>darlc</code> is the whole method; the phases under it follow.)</p>\n",
    );

    // Loss curves.
    let cs = curves(p.log);
    if !cs.is_empty() {
        h.push_str(
            "<h2 id=\"training\">Training</h2>\n<p>Per epoch, from <code>log.jsonl</code>: \
             warm-up epochs in teal, joint epochs in orange (the dashed line).</p>\n<div class=\"curves\">\n",
        );
        for (key, what, ys, warm) in &cs {
            let _ = writeln!(
                h,
                "<figure>{}<figcaption><code>{key}</code>: {}</figcaption></figure>",
                svg_curve(key, ys, *warm),
                escape(what)
            );
        }
        h.push_str("</div>\n");
    }

    // Metrics.
    if let Some(m) = p.metrics {
        h.push_str("<h2 id=\"metrics\">Metrics</h2>\n<table>\n");
        for (k, what) in [
            ("dbie", "DBIE (lower is better, method §12.1)"),
            ("dbip", "DBIP (higher is better)"),
            (
                "sam",
                "SAM, mean over clusters (radians; lower is better, §12.3)",
            ),
            ("sam_median", "SAM, median"),
            ("nmi", "NMI against the truth"),
            ("ari", "ARI"),
            ("acc", "ACC"),
            ("homogeneity", "homogeneity"),
            ("completeness", "completeness"),
        ] {
            let _ = writeln!(
                h,
                "<tr><th>{what}</th><td class=\"n\">{}</td></tr>",
                cell(m.get(k))
            );
        }
        h.push_str("</table>\n");
        for n in m["notes"].as_array().into_iter().flatten() {
            let _ = writeln!(h, "<p>{}</p>", cell(Some(n)));
        }
        let _ = writeln!(h, "<p>computed on {}</p>", cell(m.get("dbi_source")));
    }

    // Cards.
    let _ = writeln!(
        h,
        "<h2 id=\"clusters\">Gene modules</h2>\n<p>{} cluster(s). Per cluster: the module score over \
         the tissue (per spot, the mean of the cluster's genes after scaling each gene to its \
         maximum), the mean pattern and the members with the highest confidence on one colour \
         scale, and the genes, highest confidence first.</p>\n<div class=\"cards\">",
        p.cards.len()
    );
    for c in p.cards {
        let m = &c.module;
        let sam = match (m.sam, m.quality) {
            (Some(s), Some(q)) => format!("SAM {} ({q})", short(s)),
            (Some(s), None) => format!("SAM {}", short(s)),
            _ => "SAM n/a".into(),
        };
        let _ = write!(
            h,
            "<section class=\"card\" id=\"cluster-{0}\"><h3>cluster {0} · {1} · {sam}</h3>\n\
             <div class=\"pics\">{2}\n{3}</div>\n<div class=\"genes\">",
            m.cluster,
            genes_label(m.size()),
            c.map_png.as_ref().map_or(String::new(), |png| png_img(
                png,
                &format!("module score of cluster {}", m.cluster)
            )),
            png_img(
                &c.montage_png,
                &format!("mean pattern and members of cluster {}", m.cluster)
            ),
        );
        let gene = |i: usize| {
            format!(
                "<span title=\"{}\">{} <small>{:.2}</small></span> ",
                escape(&p.ids[i]),
                escape(&p.symbols[i]),
                p.confidence[i]
            )
        };
        for &i in m.members.iter().take(GENES_OPEN) {
            h.push_str(&gene(i));
        }
        if m.size() > GENES_OPEN {
            let _ = write!(
                h,
                "<details><summary>{} more</summary>",
                m.size() - GENES_OPEN
            );
            for &i in &m.members[GENES_OPEN..] {
                h.push_str(&gene(i));
            }
            h.push_str("</details>");
        }
        h.push_str("</div></section>\n");
    }
    h.push_str("</div>\n");

    // Files.
    h.push_str("<h2 id=\"files\">Files</h2>\n<ul>\n");
    for f in run["outputs"].as_array().into_iter().flatten() {
        let name = cell(Some(f));
        let _ = writeln!(h, "<li><a href=\"{name}\">{name}</a></li>");
    }
    h.push_str("</ul>\n</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }

    #[test]
    fn volatile_parts_are_cut() {
        let page = format!("a{VOLATILE_START}1.2 s{VOLATILE_END}b{VOLATILE_START}x{VOLATILE_END}c");
        assert_eq!(without_volatile(&page), "abc");
        assert_eq!(without_volatile("plain"), "plain");
    }

    #[test]
    fn escape_covers_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn curves_split_warm_up_and_joint() {
        let log = "{\"phase\":\"warm-up\",\"epoch\":0,\"l_cl\":4.0}\n\
                   {\"phase\":\"warm-up\",\"epoch\":1,\"l_cl\":3.5}\n\
                   {\"phase\":\"smm-init\",\"l_map\":1.0}\n\
                   {\"phase\":\"joint\",\"epoch\":0,\"l_cl\":3.0,\"l_kl\":0.5}\n";
        let c = curves(log);
        let cl = c.iter().find(|c| c.0 == "l_cl").unwrap();
        assert_eq!((cl.2.clone(), cl.3), (vec![4.0, 3.5, 3.0], 2));
        let kl = c.iter().find(|c| c.0 == "l_kl").unwrap();
        assert_eq!((kl.2.clone(), kl.3), (vec![0.5], 0));
        assert!(c.iter().all(|c| c.0 != "l_map"), "not an epoch curve");
        let svg = svg_curve("l_cl", &cl.2, cl.3);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("stroke-dasharray"), "phase boundary drawn");
    }

    #[test]
    fn page_escapes_names_and_lists_every_gene() {
        let run = serde_json::json!({
            "input": "<x>", "darlc_version": "0.1.0", "config": {"method": "darlc", "seed": 0,
            "module2": {"clusters": {"rule": "st"}}}, "threads": 2, "clusters": 2, "images": 40,
            "warnings": ["warning: w"], "phases": [{"name": "load", "seconds": 1.0,
            "peak_rss_mb": 10.0}], "outputs": ["clusters.csv"], "command": ["darlc", "run"]
        });
        let data = serde_json::json!({"input": "<x>", "kind": "visium", "spots": 3});
        let ids: Vec<String> = (0..40).map(|i| format!("E{i}")).collect();
        let symbols: Vec<String> = (0..40).map(|i| format!("S&{i}")).collect();
        let conf = vec![0.5; 40];
        let card = Card {
            module: Module {
                cluster: 1,
                members: (0..40).collect(),
                sam: Some(0.5),
                quality: Some("high"),
            },
            map_png: Some(vec![1, 2, 3]),
            montage_png: vec![4],
        };
        let page = render(&Page {
            run: &run,
            data: &data,
            metrics: None,
            log: "",
            cards: std::slice::from_ref(&card),
            ids: &ids,
            symbols: &symbols,
            confidence: &conf,
        });
        assert!(page.contains("&lt;x&gt;") && !page.contains("<x>"));
        assert_eq!(page.matches("S&amp;").count(), 40, "every gene listed once");
        assert!(page.contains("10 more"));
        assert!(page.contains("K = 2 = round(N / 30)"));
        assert!(page.contains("data:image/png;base64,AQID"));
        assert!(page.contains("<div class=\"warn\">warning: w</div>"));
        let stable = without_volatile(&page);
        assert!(!stable.contains("2 threads") && !stable.contains("darlc run"));
        assert!(!stable.contains(">1.0<") && stable.contains("Time and memory"));
    }
}
