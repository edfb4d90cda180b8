//! ST-scale timings (ignored by default; run with
//! `cargo test --release --test module2_bench -- --ignored --nocapture`).

use darlc::module2::similarity::seeding_similarity;
use darlc::module2::smm::{Smm, SmmPrior};
use darlc::rng::stream;
use ndarray::{Array1, Array2, Array3};
use rand::Rng;
use std::time::Instant;

#[test]
#[ignore]
fn bench_similarity_18000x4000() {
    let (n, n_pix) = (18_000, 4_000);
    let mut rng = stream(1, "bench.sim");
    let y = Array2::from_shape_fn((n, n_pix), |_| {
        if rng.random::<f32>() < 0.1 {
            rng.random::<f32>()
        } else {
            0.0
        }
    });
    let t = Instant::now();
    let s = seeding_similarity(y.view(), 15).unwrap();
    println!(
        "similarity N={n} n_pix={n_pix}: {:.1} s, nnz {} (threads {})",
        t.elapsed().as_secs_f64(),
        s.nnz(),
        rayon::current_num_threads()
    );
}

#[test]
#[ignore]
fn bench_em_k600_d32_n18000() {
    let (n, d, k) = (18_000, 32, 600);
    let mut rng = stream(2, "bench.em");
    let centres = Array2::from_shape_fn((k, d), |_| 4.0 * (rng.random::<f64>() - 0.5));
    let z = Array2::from_shape_fn((n, d), |(i, j)| {
        centres[[i % k, j]] + (rng.random::<f64>() - 0.5)
    });
    let prior = SmmPrior::default_from(z.view(), k).unwrap();
    let mut sigma = Array3::<f64>::zeros((k, d, d));
    for c in 0..k {
        for j in 0..d {
            sigma[[c, j, j]] = 0.1;
        }
    }
    let mut smm = Smm::new(
        Array1::from_elem(k, 1.0 / k as f64),
        centres.clone(),
        sigma,
        Array1::from_elem(k, 3.0),
        false,
    )
    .unwrap();
    let t = Instant::now();
    let rep = smm.em(z.view(), &prior, 20, 0.0).unwrap();
    println!(
        "EM K={k} d={d} N={n}: {} iterations in {:.1} s (threads {}), ℓ_MAP {:.3} → {:.3}",
        rep.iters,
        t.elapsed().as_secs_f64(),
        rayon::current_num_threads(),
        rep.l_map[0],
        rep.l_map[rep.iters]
    );
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process from /proc/self/stat (clock ticks of 1/100 s).
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / 100.0
}

#[test]
#[ignore]
fn profile_em_steps() {
    let (n, d, k) = (18_000, 32, 600);
    let mut rng = stream(2, "bench.em");
    let centres = Array2::from_shape_fn((k, d), |_| 4.0 * (rng.random::<f64>() - 0.5));
    let z = Array2::from_shape_fn((n, d), |(i, j)| {
        centres[[i % k, j]] + (rng.random::<f64>() - 0.5)
    });
    let prior = SmmPrior::default_from(z.view(), k).unwrap();
    let mut sigma = Array3::<f64>::zeros((k, d, d));
    for c in 0..k {
        for j in 0..d {
            sigma[[c, j, j]] = 0.1;
        }
    }
    let smm = Smm::new(
        Array1::from_elem(k, 1.0 / k as f64),
        centres.clone(),
        sigma,
        Array1::from_elem(k, 3.0),
        false,
    )
    .unwrap();
    for threads in [1usize, 2] {
        let mut smm = smm.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            let t0 = Instant::now();
            let c0 = cpu_seconds();
            let e = smm.estep(z.view()).unwrap();
            let (c1, t1) = (cpu_seconds(), t0.elapsed().as_secs_f64());
            let nk = smm.mstep(z.view(), e.r.view(), Some(e.w.view()), &prior).unwrap();
            let (c2, t2) = (cpu_seconds(), t0.elapsed().as_secs_f64());
            smm.nu_step(&e, nk.view());
            let c3 = cpu_seconds();
            let l = smm.l_map(e.log_likelihood(), &prior);
            let c4 = cpu_seconds();
            let small = e.r.iter().filter(|&&v| v < 1e-30).count() as f64 / (n * k) as f64;
            println!(
                "{threads} thread(s): CPU s E {:.2}, M {:.2}, nu {:.2}, lmap {:.2}; wall E {t1:.2}, \
                 M {:.2}; frac r<1e-30 {small:.3}; {l}",
                c1 - c0,
                c2 - c1,
                c3 - c2,
                c4 - c3,
                t2 - t1
            );
        });
    }
}

#[test]
#[ignore]
fn profile_kmeans_st() {
    let (n, d, k) = (18_000, 32, 600);
    let mut rng = stream(2, "bench.em");
    let centres = Array2::from_shape_fn((k, d), |_| 4.0 * (rng.random::<f64>() - 0.5));
    let z = Array2::from_shape_fn((n, d), |(i, j)| {
        centres[[i % k, j]] + (rng.random::<f64>() - 0.5)
    });
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    pool.install(|| {
        let c0 = cpu_seconds();
        let km = darlc::linalg::kmeans::kmeans(z.view(), k, &mut stream(1, "kmeans++")).unwrap();
        let c1 = cpu_seconds();
        println!("kmeans++ + Lloyd K={k} N={n}: {:.2} CPU s (1 thread), {} passes, converged {}, reseeds {}", c1 - c0, km.iters, km.converged, km.reseeds.len());
    });
}

#[test]
#[ignore]
fn bench_k_infer_20000() {
    // kNN-like graph: 20,000 nodes in 40 planted groups, 15 random in-group links per node and
    // 1 random cross link per node (weights 0.5–1 vs 0.1).
    use darlc::linalg::sparse::Csr;
    use darlc::module2::k_infer::infer_k;
    let (n, groups) = (20_000usize, 40usize);
    let size = n / groups;
    let mut rng = stream(3, "bench.kinfer");
    let mut pairs = std::collections::BTreeMap::new();
    for i in 0..n {
        let g = i / size;
        for _ in 0..15 {
            let j = g * size + rng.random_range(0..size);
            if j != i {
                pairs.insert((i.min(j), i.max(j)), 0.5 + 0.5 * rng.random::<f64>());
            }
        }
        let j = rng.random_range(0..n);
        if j != i {
            pairs.entry((i.min(j), i.max(j))).or_insert(0.1);
        }
    }
    let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (&(i, j), &w) in &pairs {
        rows[i].push((j, w));
        rows[j].push((i, w));
    }
    let s = Csr::from_rows(n, rows);
    let t = Instant::now();
    let res = infer_k(&s, &mut stream(3, "k_infer.lanczos")).unwrap();
    println!(
        "k_infer N={n}: K̂ = {} (planted {groups}), {:.1} s, components {}, λ[0..45] = {:?}",
        res.k_hat,
        t.elapsed().as_secs_f64(),
        res.components,
        &res.eigenvalues[..45]
    );
}
