//! Readers on tiny hand-made inputs of every layout, on the embedded default data, and on every
//! folder of shared/data that fits a reader (skipped with a note when shared/ is absent).

mod data_common;

use darlc::data::{CoordMode, Lattice, LoadOptions, default_input, load};
use darlc::io::{TensorData, TensorFile};
use data_common::*;
use ndarray::{Array4, s};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Expected image value of tiny gene g (1 or 2) at spot s, computed straight from method §2.1:
/// kept genes are G1 and G2 (MT-CO1 by prefix, G4 by min_spots), library t_s = G1 + G2 counts,
/// T = median of the 12 libraries, value = ln(1 + y·T/t_s).
fn tiny_expected(g: usize, s: usize) -> f64 {
    let lib = |s: usize| (tiny_count(1, s).unwrap() + tiny_count(2, s).unwrap()) as f64;
    let mut libs: Vec<f64> = (0..TINY_SPOTS).map(lib).collect();
    libs.sort_by(f64::total_cmp);
    let t = 0.5 * (libs[5] + libs[6]);
    (tiny_count(g, s).unwrap() as f64 * t / lib(s)).ln_1p()
}

/// Tiny canvas: rows 0–2 (h0 = 3), x = ceil(col/2) ∈ 0..=4 (w0 = 5), centred in 75×75:
/// oy = (75−3)/2 = 36, ox = (75−5)/2 = 35.
fn tiny_pixel(s: usize) -> (usize, usize) {
    let (r, c) = tiny_pos(s);
    (36 + r, 35 + c.div_ceil(2))
}

fn check_tiny(images: &Array4<f32>) {
    assert_eq!(images.dim(), (2, 1, 75, 75));
    for g in 0..2 {
        let mut nz = 0;
        for s in 0..TINY_SPOTS {
            let (r, c) = tiny_pixel(s);
            let v = images[[g, 0, r, c]] as f64;
            let want = tiny_expected(g + 1, s);
            assert!(
                (v - want).abs() <= 1e-6 * want,
                "gene {g} spot {s}: {v} vs {want}"
            );
            nz += 1;
        }
        assert_eq!(
            images
                .slice(s![g, 0, .., ..])
                .iter()
                .filter(|&&v| v != 0.0)
                .count(),
            nz
        );
    }
}

#[test]
fn tiny_visium_in_every_10x_layout() {
    let t = tiny();
    let root = temp_dir("layouts");
    // 1. flat, plain text; 2. flat, gzip.
    write_tiny(&root.join("flat"), &t, false);
    write_tiny(&root.join("flatgz"), &t, true);
    // 3. Space Ranger outs/ with genes.tsv (two columns) and a header-less positions list.
    let outs = root.join("sr").join("outs");
    let m = outs.join("filtered_feature_bc_matrix");
    std::fs::create_dir_all(&m).unwrap();
    std::fs::create_dir_all(outs.join("spatial")).unwrap();
    std::fs::write(m.join("matrix.mtx.gz"), gzip(t.matrix.as_bytes())).unwrap();
    let genes: String = t
        .features
        .lines()
        .map(|l| l.rsplit_once('\t').unwrap().0.to_string() + "\n")
        .collect();
    std::fs::write(m.join("genes.tsv"), genes).unwrap();
    std::fs::write(m.join("barcodes.tsv.gz"), gzip(t.barcodes.as_bytes())).unwrap();
    let list: String = t
        .positions
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(outs.join("spatial").join("tissue_positions_list.csv"), list).unwrap();

    let mut first: Option<Array4<f32>> = None;
    for input in [
        root.join("flat"),
        root.join("flatgz"),
        root.join("sr"),
        outs.clone(),
        m.join("matrix.mtx.gz"),
    ] {
        let set = load(&input, &LoadOptions::default())
            .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        check_tiny(&set.images);
        assert_eq!(set.ids, vec!["ENSG1", "ENSG2"]);
        assert_eq!(set.symbols, vec!["G1", "G2"]);
        let g = set.report.genes.as_ref().unwrap();
        assert_eq!(
            (g.genes_in, g.dropped_mt, g.dropped_min_spots, g.genes_kept),
            (4, 1, 1, 2)
        );
        let sec = set.section.as_ref().unwrap();
        assert_eq!(sec.lattice, Lattice::Hex);
        assert_eq!(sec.spot_ids.len(), TINY_SPOTS);
        // Graph coordinates (array_col/2, array_row·√3/2), method §3.2.
        let (r, c) = tiny_pos(5);
        assert_eq!(
            sec.coords[5],
            [c as f64 / 2.0, r as f64 * 3f64.sqrt() / 2.0]
        );
        assert_eq!(sec.pixel[5], tiny_pixel(5));
        assert_eq!(
            sec.expr[[5, 1]],
            set.images[[1, 0, tiny_pixel(5).0, tiny_pixel(5).1]]
        );
        assert_eq!(
            set.mask.iter().map(|&v| v as usize).sum::<usize>(),
            TINY_SPOTS
        );
        match &first {
            None => first = Some(set.images.clone()),
            Some(f) => assert_eq!(f, &set.images),
        }
    }
}

#[test]
fn non_gene_expression_features_and_off_tissue_spots_are_excluded() {
    let mut t = tiny();
    // A fifth feature of another type, present in every spot (and in the off-tissue column 13).
    t.features += "AB1\tCD3\tAntibody Capture\n";
    let mut lines: Vec<String> = t.matrix.lines().map(String::from).collect();
    let nnz: usize = lines[2].split(' ').nth(2).unwrap().parse().unwrap();
    lines[2] = format!("5 {} {}", TINY_SPOTS + 1, nnz + TINY_SPOTS + 2);
    for s in 1..=TINY_SPOTS + 1 {
        lines.push(format!("5 {s} 9"));
    }
    lines.push(format!("1 {} 100", TINY_SPOTS + 1));
    t.matrix = lines.join("\n") + "\n";
    t.barcodes += "OFF-1\n";
    let d = temp_dir("types");
    write_tiny(&d, &t, true);
    let set = load(&d, &LoadOptions::default()).unwrap();
    let g = set.report.genes.as_ref().unwrap();
    assert_eq!(g.dropped_not_gene_expression, 1);
    assert_eq!(set.report.items_in, TINY_SPOTS + 1);
    assert_eq!(set.section.as_ref().unwrap().spot_ids.len(), TINY_SPOTS);
    // The off-tissue spot and the antibody feature change nothing.
    check_tiny(&set.images);
}

/// Tiny legacy-ST dense table: 3 genes × 12 spots at `XxY` positions x ∈ 1..=4 (+0.1 jitter),
/// y ∈ 1..=3.
fn dense_rows() -> (Vec<String>, Vec<String>, Vec<Vec<u32>>) {
    let spots: Vec<String> = (0..12)
        .map(|s| format!("{}.1x{}.05", 1 + s % 4, 1 + s / 4))
        .collect();
    let genes = vec!["Gad1".to_string(), "Mt-x".to_string(), "Penk".to_string()];
    let counts: Vec<Vec<u32>> = (0..12).map(|s| vec![1 + s % 2, 3, 2 + s % 3]).collect();
    (spots, genes, counts)
}

#[test]
fn dense_counts_tables_in_both_orientations_and_mtx_with_xy_names_agree() {
    let (spots, genes, counts) = dense_rows();
    let d = temp_dir("dense");
    let mut rows = format!(",{}\n", genes.join(","));
    for (s, name) in spots.iter().enumerate() {
        rows += &format!(
            "{name},{}\n",
            counts[s]
                .iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    std::fs::write(d.join("rows.csv"), &rows).unwrap();
    let mut cols = format!("gene\t{}\n", spots.join("\t"));
    for (g, name) in genes.iter().enumerate() {
        cols += &format!(
            "{name}\t{}\n",
            counts
                .iter()
                .map(|c| c[g].to_string())
                .collect::<Vec<_>>()
                .join("\t")
        );
    }
    std::fs::write(d.join("cols.tsv.gz"), gzip(cols.as_bytes())).unwrap();
    // The same data as MTX + barcodes named XxY (no spot table).
    let m = d.join("mtx");
    std::fs::create_dir_all(&m).unwrap();
    let mut e = vec![];
    for (s, c) in counts.iter().enumerate() {
        for (g, v) in c.iter().enumerate() {
            e.push(format!("{} {} {v}", g + 1, s + 1));
        }
    }
    let mtx = format!(
        "%%MatrixMarket matrix coordinate integer general\n3 12 {}\n{}\n",
        e.len(),
        e.join("\n")
    );
    std::fs::write(m.join("matrix.mtx"), mtx).unwrap();
    std::fs::write(
        m.join("features.tsv"),
        genes
            .iter()
            .map(|g| format!("{g}\t{g}\tGene Expression\n"))
            .collect::<String>(),
    )
    .unwrap();
    std::fs::write(
        m.join("barcodes.tsv"),
        spots.iter().map(|s| format!("{s}\n")).collect::<String>(),
    )
    .unwrap();

    let opts = LoadOptions {
        min_spots: 1,
        ..Default::default()
    };
    let a = load(&d.join("rows.csv"), &opts).unwrap();
    let b = load(&d.join("cols.tsv.gz"), &opts).unwrap();
    let c = load(&m, &opts).unwrap();
    assert_eq!(a.images, b.images);
    assert_eq!(a.images, c.images);
    assert_eq!(a.symbols, vec!["Gad1", "Penk"]); // "Mt-x" is dropped by the case-insensitive MT- rule
    let sec = a.section.as_ref().unwrap();
    assert_eq!(sec.lattice, Lattice::Square);
    // x rounds to 1..=4, y to 1..=3: a 3×4 box centred in 75×75 at (36, 35); image row = y.
    assert_eq!(sec.pixel[0], (36, 35));
    assert_eq!(sec.pixel[11], (38, 38));
    assert_eq!(sec.coords[11], [2.0, 3.0]);
    // Hand value: libraries Gad1 + Penk = 3 + s%2 + s%3 over s = 0..11 are
    // {3,5,5,4,4,6,3,5,5,4,4,6}, sorted 3,3,4,4,4,4,5,5,5,5,6,6, median (mean of the 6th and 7th)
    // 4.5; spot 0 has library 3, so Gad1 at spot 0 is ln(1 + 1·4.5/3) = ln 2.5.
    let want = 2.5f64.ln();
    let got = a.images[[0, 0, 36, 35]] as f64;
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn msi_table_tic_by_hand() {
    // 2×2 pixels, 2 m/z channels; pixel (x=1,y=0) is empty (TIC 0, not tissue).
    let d = temp_dir("msi");
    let p = d.join("msi.csv");
    std::fs::write(&p, "x,y,100.1,200.2\n0,0,1,3\n1,0,0,0\n0,1,2,0\n1,1,4,4\n").unwrap();
    let set = load(&p, &LoadOptions::default()).unwrap();
    assert_eq!(set.report.kind, "msi");
    assert_eq!(set.ids, vec!["100.1", "200.2"]);
    // TIC: 4, 0, 2, 8 -> median of positive {2, 4, 8} = 4. X = a·4/TIC.
    assert_eq!(set.report.tic_median, Some(4.0));
    let sec = set.section.unwrap();
    assert_eq!(sec.spot_ids.len(), 3);
    // Tissue box 2×2 centred in 75×75 at (36, 36).
    assert_eq!(set.images[[0, 0, 36, 36]], 1.0); // 1·4/4
    assert_eq!(set.images[[1, 0, 36, 36]], 3.0); // 3·4/4
    assert_eq!(set.images[[0, 0, 37, 36]], 4.0); // 2·4/2
    assert_eq!(set.images[[0, 0, 37, 37]], 2.0); // 4·4/8
    assert_eq!(set.mask[[36, 37]], 0);
    assert_eq!(set.mask.iter().map(|&v| v as usize).sum::<usize>(), 3);
}

#[test]
fn image_stacks_from_safetensors_and_csv() {
    let d = temp_dir("stack");
    // safetensors [N=3, C=2, H=4, W=6] with labels; padded to 5×10 for p = 5.
    let imgs = Array4::from_shape_fn((3, 2, 4, 6), |(n, c, h, w)| {
        (n * 100 + c * 10 + h * 6 + w) as f32
    });
    let mut tf = TensorFile::new();
    tf.insert("images", TensorData::F32(imgs.clone().into_dyn()));
    tf.insert_i64("labels", ndarray::arr1(&[7i64, 8, 7]).into_dyn());
    tf.save(&d.join("s.safetensors")).unwrap();
    let set = load(&d.join("s.safetensors"), &LoadOptions::default()).unwrap();
    assert_eq!(set.images.dim(), (3, 2, 5, 10));
    assert_eq!(set.images.slice(s![.., .., ..4, ..6]), imgs);
    assert_eq!(set.images.slice(s![.., .., 4, ..]).sum(), 0.0);
    assert_eq!(set.labels, Some(vec!["7".into(), "8".into(), "7".into()]));
    assert_eq!(set.mask.iter().map(|&v| v as usize).sum::<usize>(), 24);
    assert!(set.section.is_none());
    // CSV with HxWxC = 2x3x2, values in [C][H][W] order.
    let mut csv = "label".to_string();
    for k in 0..12 {
        csv += &format!(",p{k}");
    }
    csv += "\n";
    csv += &format!(
        "a,{}\n",
        (0..12).map(|v| v.to_string()).collect::<Vec<_>>().join(",")
    );
    std::fs::write(d.join("i.csv"), &csv).unwrap();
    let opts = LoadOptions {
        image_shape: Some((2, 3, 2)),
        ..Default::default()
    };
    let set = load(&d.join("i.csv"), &opts).unwrap();
    assert_eq!(set.images.dim(), (1, 2, 5, 5));
    assert_eq!(set.images[[0, 1, 1, 2]], 11.0); // channel 1, row 1, col 2 -> 6 + 3 + 2
    assert_eq!(set.labels, Some(vec!["a".into()]));
}

#[test]
fn embedded_default_is_the_mob_section() {
    let set = load(&default_input(), &LoadOptions::default()).unwrap();
    assert_eq!(set.report.kind, "legacy-st");
    let g = set.report.genes.as_ref().unwrap();
    // numpy cross-check (/tmp/check.py in the session notes): genes with ≥ 10 positive spots
    // and no MT-/ERCC- prefix = 12947; median library over them = 27458.5.
    assert_eq!((g.genes_in, g.genes_kept), (16218, 12947));
    assert_eq!(g.library_median, 27458.5);
    let c = set.report.canvas.as_ref().unwrap();
    // method §2.2: the 260 spots map to 260 distinct pixels in a 16×21 box.
    assert_eq!((c.h0, c.w0, c.height, c.width), (16, 21, 75, 75));
    let sec = set.section.as_ref().unwrap();
    assert_eq!(sec.spot_ids.len(), 260);
    assert_eq!(sec.lattice, Lattice::Square);
    assert_eq!(set.images.dim(), (12947, 1, 75, 75));
    // Every image is zero outside the tissue mask.
    for img in set.images.outer_iter().take(200) {
        for ((r, c), &m) in set.mask.indexed_iter() {
            if m == 0 {
                assert_eq!(img[[0, r, c]], 0.0);
            }
        }
    }
}

/// Parse a gzipped MTX by hand (test oracle): `(gene, spot) -> count`, 0-based.
fn read_mtx_by_hand(p: &Path) -> (usize, usize, HashMap<(usize, usize), f64>) {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    let mut lines = s.lines().filter(|l| !l.starts_with('%'));
    let dims: Vec<usize> = lines
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let mut m = HashMap::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        m.insert(
            (
                f[0].parse::<usize>().unwrap() - 1,
                f[1].parse::<usize>().unwrap() - 1,
            ),
            f[2].parse().unwrap(),
        );
    }
    (dims[0], dims[1], m)
}

#[test]
fn dlpfc_images_match_counts_recomputed_by_hand() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("dlpfc_151673_despace500");
    let set = load(&dir, &LoadOptions::default()).unwrap();
    // method §2.2 worked example: all 3639 spots are in tissue, array_row 0–76, array_col 5–120 ->
    // h0 = 77, w0 = 59, canvas 77×75 (oy 0, ox 8), padded to 80×75.
    let c = set.report.canvas.clone().unwrap();
    assert_eq!(
        (c.h0, c.w0, c.oy, c.ox, c.height, c.width),
        (77, 59, 0, 8, 80, 75)
    );
    // numpy cross-check: 256 of the 500 genes are in ≥ 10 spots; median library 46.
    assert_eq!(set.images.dim(), (256, 1, 80, 75));
    assert_eq!(set.report.genes.as_ref().unwrap().library_median, 46.0);

    let (n_genes, n_spots, counts) = read_mtx_by_hand(&dir.join("matrix.mtx.gz"));
    let pos = std::fs::read_to_string(dir.join("tissue_positions.csv")).unwrap();
    let rc: Vec<(i64, i64)> = pos
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[2].parse().unwrap(), f[3].parse().unwrap())
        })
        .collect();
    assert_eq!(rc.len(), n_spots); // same order as the matrix columns (README)
    let mut feats = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join("features.tsv.gz")).unwrap())
        .read_to_string(&mut feats)
        .unwrap();
    let ids: Vec<&str> = feats
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    // Kept genes: ≥ 10 positive spots (no MT-/ERCC- symbols in this set).
    let kept: Vec<usize> = (0..n_genes)
        .filter(|&g| {
            (0..n_spots)
                .filter(|&s| counts.get(&(g, s)).is_some_and(|&v| v > 0.0))
                .count()
                >= 10
        })
        .collect();
    assert_eq!(kept.iter().map(|&g| ids[g]).collect::<Vec<_>>(), set.ids);
    let lib: Vec<f64> = (0..n_spots)
        .map(|s| {
            kept.iter()
                .map(|&g| counts.get(&(g, s)).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let (rmin, cmin) = (
        rc.iter().map(|p| p.0).min().unwrap(),
        rc.iter().map(|p| p.1).min().unwrap(),
    );
    // A few genes by hand: the first, a middle one, the last and the most expressed kept gene.
    let busiest = (0..kept.len())
        .max_by_key(|&k| {
            (0..n_spots)
                .filter(|&s| counts.contains_key(&(kept[k], s)))
                .count()
        })
        .unwrap();
    for k in [0, kept.len() / 2, kept.len() - 1, busiest] {
        let g = kept[k];
        let mut nonzero = 0;
        for s in 0..n_spots {
            let (r, col) = rc[s];
            let (y, x) = ((r - rmin) as usize, ((col - cmin + 1) / 2) as usize);
            let v = set.images[[k, 0, y, 8 + x]] as f64;
            match counts.get(&(g, s)) {
                Some(&y_sg) if y_sg > 0.0 => {
                    let want = (y_sg * 46.0 / lib[s]).ln_1p();
                    assert!(
                        (v - want).abs() <= 1e-6 * want,
                        "gene {} spot {s}: {v} vs {want}",
                        ids[g]
                    );
                    nonzero += 1;
                }
                _ => assert_eq!(v, 0.0),
            }
        }
        assert_eq!(
            set.images
                .slice(s![k, 0, .., ..])
                .iter()
                .filter(|&&v| v != 0.0)
                .count(),
            nonzero
        );
    }
}

#[test]
fn osmfish_cells_are_binned() {
    let Some(data) = shared_data() else { return };
    let set = load(&data.join("osmfish_sscortex"), &LoadOptions::default()).unwrap();
    assert_eq!(set.report.kind, "cells-binned");
    let b = set.report.binning.clone().unwrap();
    // numpy/scipy replica of the bin rule (/tmp/check2.py): side = max(48290.2/75, median NN 157.9)
    // = 643.87, 1406 occupied bins of a 75 × 38 grid, at most 17 cells per bin; T = 633.
    assert_eq!((b.points, b.bins, b.max_points_per_bin), (5328, 1406, 17));
    assert!((b.bin_size - 643.869811495212).abs() < 1e-9);
    assert_eq!(set.report.genes.as_ref().unwrap().library_median, 633.0);
    let c = set.report.canvas.clone().unwrap();
    assert_eq!((c.h0, c.w0), (75, 38));
    let sec = set.section.unwrap();
    assert_eq!(sec.lattice, Lattice::Arbitrary);
    assert_eq!(set.images.dim(), (33, 1, 75, 75));
}

#[test]
fn breast_cancer_needs_a_section_and_binning() {
    let Some(data) = shared_data() else { return };
    let dir = data.join("breast_cancer_st_layers1to4");
    let e = load(&dir, &LoadOptions::default()).unwrap_err().to_string();
    assert!(e.contains("--section") && e.contains("1, 2, 3, 4"), "{e}");
    for sec in ["1", "2", "3", "4"] {
        let opts = LoadOptions {
            section: Some(sec.into()),
            ..Default::default()
        };
        // README: rounding the re-centred coordinates collides in every section.
        let e = load(&dir, &opts).unwrap_err().to_string();
        assert!(
            e.contains("spots.csv:") && e.contains("same pixel") && e.contains("--coords bin"),
            "{e}"
        );
        let opts = LoadOptions {
            coords: CoordMode::Bin,
            ..opts
        };
        let set = load(&dir, &opts).unwrap();
        assert_eq!(set.report.section_selected.as_deref(), Some(sec));
        if sec == "2" {
            // numpy replica of the bin rule: 251 spots -> 248 bins of side 0.95, 9420 genes kept,
            // T = 2138.
            let b = set.report.binning.clone().unwrap();
            assert_eq!((b.points, b.bins), (251, 248));
            assert_eq!(set.images.dim().0, 9420);
            assert_eq!(set.report.genes.as_ref().unwrap().library_median, 2138.0);
        }
    }
}

#[test]
fn digits_stack_with_labels_and_sparsification() {
    let Some(data) = shared_data() else { return };
    let p = data.join("digits_8x8").join("digits.csv.gz");
    let set = load(
        &p,
        &LoadOptions {
            image_shape: Some((8, 8, 1)),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(set.images.dim(), (1797, 1, 10, 10));
    let labels = set.labels.clone().unwrap();
    // README: 178 zeros, 180 nines.
    assert_eq!(labels.iter().filter(|l| *l == "0").count(), 178);
    assert_eq!(labels.iter().filter(|l| *l == "9").count(), 180);
    assert_eq!(set.mask.iter().map(|&v| v as usize).sum::<usize>(), 64);
    let sp = load(
        &p,
        &LoadOptions {
            sparsify: Some(0.9),
            seed: 3,
            ..Default::default()
        },
    )
    .unwrap();
    for (a, b) in sp.images.outer_iter().zip(set.images.outer_iter()) {
        // round(0.9·64) = 58 positions zeroed: at most 6 non-zero pixels survive, each unchanged.
        let kept = a.iter().filter(|&&v| v != 0.0).count();
        assert!(kept <= 6);
        for (x, y) in a.iter().zip(b.iter()) {
            assert!(*x == 0.0 || x == y);
        }
    }
}
