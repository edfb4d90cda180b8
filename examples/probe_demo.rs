//! A DEMONSTRATION of the gene-pair probe (`darlc::eval::probe`, paper §4.3.1) on the embedded
//! MOB section — not the paper's benchmark. The paper's ground truth is GO-based (Du et al.
//! 2019) and its embeddings come from DARLC; neither exists here, so this demo
//!
//! * uses each gene's log-normalised expression over the spots (a column of `section.expr`,
//!   SPEC §2.1) as its "embedding";
//! * labels pairs by the built-in gene-family rules of `darlc::eval::families` (HLA/H2-, GABR,
//!   RPL, MT): every pair of two genes of the same family is 1; as many pairs of genes of two
//!   different families, drawn without replacement from all such pairs with the stream
//!   `probe_demo.negatives`, are 0;
//! * runs the probe with its defaults (5 folds, 64 hidden, 200 epochs, lr 1e-3, seed 0), and the
//!   same with the labels permuted (stream `probe_demo.shuffle`) as a chance reference.
//!
//! `cargo run --release --example probe_demo`

use darlc::eval::families::select_by_rules;
use darlc::eval::probe::{Pair, ProbeParams, format_probe, run_probe};
use darlc::rng;
use rand::Rng;
use std::collections::BTreeMap;

fn shuffle<T>(v: &mut [T], r: &mut darlc::rng::Stream) {
    for i in (1..v.len()).rev() {
        v.swap(i, r.random_range(0..=i));
    }
}

fn main() -> darlc::Result<()> {
    let set = darlc::data::load(&darlc::data::default_input(), &Default::default())?;
    let section = set
        .section
        .as_ref()
        .ok_or_else(|| darlc::DarlcError::Data("the default input has no section".into()))?;
    // Genes are columns of expr [n_spots, G]: embedding of gene g = expr[:, g].
    let emb = section.expr.t().mapv(f64::from);
    let selected = select_by_rules(&set.symbols);
    let mut per_family: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, f) in &selected {
        *per_family.entry(f.as_str()).or_default() += 1;
    }
    println!(
        "MOB section: {} genes × {} spots; family genes by the built-in rules: {:?}",
        emb.nrows(),
        emb.ncols(),
        per_family
    );
    let mut pos = Vec::new();
    let mut neg = Vec::new();
    for (i, (a, fa)) in selected.iter().enumerate() {
        for (b, fb) in &selected[i + 1..] {
            let p = Pair {
                a: *a,
                b: *b,
                label: fa == fb,
            };
            if p.label { pos.push(p) } else { neg.push(p) }
        }
    }
    let mut r = rng::stream(0, "probe_demo.negatives");
    shuffle(&mut neg, &mut r);
    neg.truncate(pos.len());
    let mut pairs = pos;
    pairs.extend(neg);
    println!(
        "pairs: {} (within-family = 1, a random equal number across families = 0)",
        pairs.len()
    );
    let params = ProbeParams::default();
    let res = run_probe(emb.view(), &pairs, &params)?;
    println!("\n== family pairs (DEMONSTRATION, not the paper's GO benchmark) ==");
    print!("{}", format_probe(&res));

    let mut labels: Vec<bool> = pairs.iter().map(|p| p.label).collect();
    shuffle(&mut labels, &mut rng::stream(0, "probe_demo.shuffle"));
    for (p, l) in pairs.iter_mut().zip(labels) {
        p.label = l;
    }
    let chance = run_probe(emb.view(), &pairs, &params)?;
    println!("\n== the same pairs with permuted labels (chance reference) ==");
    print!("{}", format_probe(&chance));
    Ok(())
}
