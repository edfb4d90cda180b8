//! `darlc eval`: score a clustering (method §12) and the gene-family benchmark ([P] §4.3.2).

use super::leiden::CommunityArgs;
use crate::error::{DarlcError, Result};
use crate::eval::families::{family_benchmark, read_family_file, select_by_file, select_by_rules};
use crate::eval::input::{Matrix, load_embeddings, load_images, read_two_column_csv};
use crate::eval::report::{LabelTable, evaluate, format_families, format_table};
use std::path::{Path, PathBuf};

/// Score a clustering: DBIE, DBIP, NMI, ARI, ACC, SAM (method §12), optionally the gene-family
/// benchmark ([P] §4.3.2).
///
/// Either `--run DIR` (reads DIR/clusters.csv, DIR/embeddings.safetensors and, if present,
/// DIR/images.safetensors) or `--labels FILE` with `--embeddings FILE` and/or `--images FILE`.
/// `--embeddings FILE --families [FILE]` without labels runs only the gene-family benchmark.
/// Ids are matched by name (see the id rules in `darlc::eval::input`).
#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// A finished `darlc run` output folder.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["embeddings", "labels"])]
    pub run: Option<PathBuf>,
    /// Embeddings: safetensors (tensor `z`, else `h`, else the only one) or CSV (id, vector…).
    #[arg(long, value_name = "FILE")]
    pub embeddings: Option<PathBuf>,
    /// Predicted labels: CSV with a header, id first, label second (e.g. clusters.csv).
    #[arg(long, value_name = "FILE")]
    pub labels: Option<PathBuf>,
    /// True labels, same format; without it NMI, ARI and ACC print "n/a".
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
    /// Raw images for DBIE/DBIP/SAM: images.safetensors (`images` [N,1,H,W], `mask` [H,W]),
    /// rows named by the genes.csv beside it. Without images the embeddings are used.
    #[arg(long, value_name = "FILE")]
    pub images: Option<PathBuf>,
    /// Embedding tensor to read from a safetensors file (default: z, else h, else the only one).
    #[arg(long, value_name = "NAME")]
    pub tensor: Option<String>,
    /// Also write the table as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Gene-family benchmark: built-in prefix rules (HLA/H2-, GABR/Gabr, RPL/Rpl, MT/Mt), or a
    /// CSV file (header; gene, family) when a FILE is given.
    #[arg(long, value_name = "FILE", num_args = 0..=1)]
    pub families: Option<Option<PathBuf>>,
    /// The family benchmark's kNN graph and Leiden run.
    #[command(flatten)]
    pub graph: CommunityArgs,
}

/// Neighbours of the family benchmark's kNN graph when `--knn` is not given.
pub const FAMILY_KNN: usize = 5;

/// Run `darlc eval`.
pub fn eval(args: EvalArgs) -> Result<()> {
    let (labels_path, emb_path, images_path) = match &args.run {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(DarlcError::param(
                    "run",
                    format!("{} is not a folder", dir.display()),
                ));
            }
            // `run.json` is written last: without it the folder is not a finished run and its
            // files may be stale or partial (issue 24).
            if !dir.join("run.json").is_file() {
                return Err(DarlcError::param(
                    "run",
                    format!(
                        "{} is not a finished run (no run.json, which `darlc run` writes last); \
                         rerun it, or score its files with --labels/--embeddings/--images",
                        dir.display()
                    ),
                ));
            }
            let emb = dir.join("embeddings.safetensors");
            let img = args
                .images
                .clone()
                .or_else(|| Some(dir.join("images.safetensors")).filter(|p| p.is_file()));
            (dir.join("clusters.csv"), emb.is_file().then_some(emb), img)
        }
        None if args.labels.is_none() && args.families.is_some() => {
            return families_only(&args);
        }
        None => {
            let labels = args.labels.clone().ok_or_else(|| {
                DarlcError::param(
                    "labels",
                    "give --run DIR, --labels FILE, or --embeddings FILE --families [FILE]",
                )
            })?;
            (labels, args.embeddings.clone(), args.images.clone())
        }
    };
    let labels = read_two_column_csv(&labels_path)?;
    let label_ids: Vec<String> = labels.iter().map(|(id, _)| id.clone()).collect();
    let run_fallback = args.run.as_ref().map(|_| label_ids.as_slice());
    let embeddings = emb_path
        .as_deref()
        .map(|p| load_embeddings(p, args.tensor.as_deref(), run_fallback))
        .transpose()?;
    let images = images_path.as_deref().map(load_images).transpose()?;
    let truth_rows = args.truth.as_deref().map(read_two_column_csv).transpose()?;
    // Every input is read before any scoring: a bad family file fails first, not last.
    let family_rows = match &args.families {
        Some(Some(f)) => Some(read_family_file(f)?),
        _ => None,
    };
    let truth = match (&truth_rows, &args.truth) {
        (Some(rows), Some(path)) => Some(LabelTable { rows, path }),
        _ => None,
    };
    let mut report = evaluate(
        &LabelTable {
            rows: &labels,
            path: &labels_path,
        },
        truth.as_ref(),
        embeddings.as_ref(),
        images.as_ref(),
    )?;
    if let Some(fam) = &args.families {
        let emb = embeddings.as_ref().ok_or_else(|| {
            DarlcError::param("families", "the gene-family benchmark needs embeddings")
        })?;
        report.families = Some(run_families(
            emb,
            fam.as_deref().zip(family_rows.as_deref()),
            &args,
        )?);
    }
    print!("{}", format_table(&report));
    if let Some(j) = &args.json {
        crate::io::write_json(j, &report)?;
    }
    Ok(())
}

/// `darlc eval --embeddings FILE --families [FILE]` without labels: only the family benchmark.
fn families_only(args: &EvalArgs) -> Result<()> {
    let path = args.embeddings.as_deref().ok_or_else(|| {
        DarlcError::param(
            "embeddings",
            "the gene-family benchmark needs --embeddings FILE",
        )
    })?;
    let emb = load_embeddings(path, args.tensor.as_deref(), None)?;
    let fam = match args.families.as_ref().and_then(|f| f.as_deref()) {
        Some(f) => Some((f, read_family_file(f)?)),
        None => None,
    };
    let rep = run_families(&emb, fam.as_ref().map(|(f, r)| (*f, r.as_slice())), args)?;
    print!("{}", format_families(&rep));
    if let Some(j) = &args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            families: &'a crate::eval::families::FamilyReport,
        }
        crate::io::write_json(j, &Out { families: &rep })?;
    }
    Ok(())
}

fn run_families(
    emb: &Matrix,
    file: Option<(&Path, &[(String, String)])>,
    args: &EvalArgs,
) -> Result<crate::eval::families::FamilyReport> {
    let names = emb.ids.names();
    let (selection, missing) = match file {
        Some((_, rows)) => select_by_file(&names, rows),
        None => (select_by_rules(&names), vec![]),
    };
    let g = &args.graph;
    let mut rep = family_benchmark(
        &names,
        emb.x.view(),
        &selection,
        g.knn.unwrap_or(FAMILY_KNN),
        g.metric,
        &g.params(),
    )?;
    rep.missing = missing;
    Ok(rep)
}
