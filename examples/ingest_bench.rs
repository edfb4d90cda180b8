//! Ingest benchmark (issue 3, item 7): `cargo run --release --example ingest_bench -- DIR`.
//! Simulates the default 15,000-gene section into DIR if it has no `outs/`, then times
//! `darlc::data::load` (read + preprocess + rasterise) and prints seconds and peak RSS.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/ingest-bench".into());
    match darlc::bench::ingest::ingest_benchmark(std::path::Path::new(&dir)) {
        Ok(b) => println!(
            "ingest: {:.2} s, peak RSS {} MB, {} images of {}x{}, {} spots{}",
            b.seconds,
            b.peak_rss_bytes
                .map_or("?".into(), |r| (r / (1 << 20)).to_string()),
            b.images,
            b.height,
            b.width,
            b.spots,
            if b.simulated {
                " (simulated in this process first)"
            } else {
                ""
            }
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
