//! `cargo xtask bench matmul --sweep`: square products of many sizes, this crate against
//! matrixmultiply on one thread.

use anyhow::Result;
use ndarray::Array2;
use serde_json::json;

use super::matmul::{matrixmultiply_sgemm, random};
use super::timing::{interleaved_median_seconds, machine, pool};

/// The square sizes of `bench matmul --sweep`.
fn sweep_sizes(quick: bool) -> Vec<usize> {
    let mut sizes: Vec<usize> = (1..=11)
        .flat_map(|e| {
            let p = 1usize << e;
            [p - 1, p, p + 1]
        })
        .chain([
            1, 3, 5, 7, 11, 13, 23, 37, 50, 71, 100, 127, 199, 300, 333, 500, 784, 999, 1500, 1999,
        ])
        .filter(|&n| (1..=2048).contains(&n))
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if quick {
        sizes.retain(|&n| n <= 130);
    }
    sizes
}

/// Square products of every size in [`sweep_sizes`], this crate against
/// matrixmultiply, one thread, measured in alternation ([`interleaved_median_seconds`]).
pub fn run(json: bool, quick: bool) -> Result<()> {
    let (samples, min_sample) = if quick { (3, 0.002) } else { (7, 0.02) };
    if !json {
        println!("machine: {}", machine());
        println!("square products C = A·B, one thread, median GFLOP/s");
        println!("{:>6} {:>10} {:>15} {:>7}", "n", "backprop", "matrixmultiply", "ratio");
    }
    let mut slower = Vec::new();
    let p = pool(1);
    for n in sweep_sizes(quick) {
        let (a, b) = (random(n, n, 1), random(n, n, 2));
        let mut c = Array2::<f32>::zeros((n, n));
        let flops = 2.0 * (n * n * n) as f64;
        let mut c_theirs = c.clone();
        // Inside the one-thread pool, where `gemm` runs on the calling thread.
        let (ours, theirs) = p.install(|| {
            interleaved_median_seconds(
                || backprop_matmul::gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()),
                || matrixmultiply_sgemm(a.view(), b.view(), &mut c_theirs),
                samples,
                min_sample,
            )
        });
        let (ours, theirs) = (flops / ours / 1e9, flops / theirs / 1e9);
        if ours < theirs {
            slower.push(n);
        }
        if json {
            for (name, gflops) in [("backprop", ours), ("matrixmultiply", theirs)] {
                println!(
                    "{}",
                    json!({"impl": name, "m": n, "k": n, "n": n, "threads": 1, "gflops": gflops})
                );
            }
        } else {
            println!("{n:>6} {ours:>10.1} {theirs:>15.1} {:>7.2}", ours / theirs);
        }
    }
    if !json {
        if slower.is_empty() {
            println!("never slower than matrixmultiply at these sizes");
        } else {
            println!("slower than matrixmultiply at n = {slower:?}");
        }
    }
    Ok(())
}
