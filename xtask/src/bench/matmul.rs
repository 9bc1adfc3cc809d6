//! `cargo xtask bench matmul`: GFLOP/s of products, ours beside matrixmultiply, the gemm crate
//! (opt-in), the ladder's rungs and numpy / PyTorch (`scripts/bench_matmul.py`); with `--arch`,
//! the products of a network's training step summed over an epoch.

use anyhow::{Context, Result};
use backprop_init::{rng, Init};
use backprop_matmul::ladder;
use clap::Args;
use ndarray::{Array2, ArrayView2};
use serde_json::json;

use super::peak::{describe, fma_peak};
use super::timing::{machine, median_seconds, pool};
use super::{Common, PythonArg};

#[derive(Args)]
pub struct MatmulArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    python: PythonArg,
    /// Only these shapes: `m,k,n`, with `,at` for A as a transposed view, `,bt` for B
    /// (repeatable) [default: squares of 256 and 1024, and 784-50-10's products at batch 64,
    /// 256, 1024 and 10,000; with --quick: 64,784,50 and 128,128,128].
    #[arg(long = "shape", value_name = "M,K,N[,at][,bt]")]
    shapes: Vec<String>,
    /// Instead of the table: every square size from 1 to 2048 that is a power of two, one less
    /// or one more, plus odd sizes between, on one thread, against matrixmultiply, the two
    /// timed in alternation; lists any size where this crate is slower.
    #[arg(long)]
    sweep: bool,
    /// The products of these networks' training steps (e.g. `784-256-10`, repeatable), and
    /// their sum over an epoch of 60,000 samples for each implementation.
    #[arg(long = "arch", value_name = "SIZES")]
    archs: Vec<String>,
    /// With --arch: the batch sizes (repeatable) [default: 64, 256 and 1024].
    #[arg(long = "batch-size", value_name = "B")]
    batch_sizes: Vec<usize>,
}

pub fn run(args: &MatmulArgs) -> Result<()> {
    if args.sweep {
        return super::sweep::run(args.common.json, args.common.quick);
    }
    matmul(args)
}

pub fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    Init::StandardNormal.weight(rows, cols, &mut rng(seed))
}

/// A random `rows × cols` operand; `transposed` stores it column-major, so that its view is a
/// transposed view (as `x·Wᵀ` passes `W`).
fn operand(rows: usize, cols: usize, transposed: bool, seed: u64) -> Array2<f32> {
    if transposed {
        random(cols, rows, seed).reversed_axes()
    } else {
        random(rows, cols, seed)
    }
}

/// `C = A·B` with matrixmultiply's sgemm (its own kernels, AVX-512 feature on), one thread.
pub fn matrixmultiply_sgemm(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut Array2<f32>) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    let (rsc, csc) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the pointers and strides describe the three arrays.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            rsc,
            csc,
        )
    }
}

/// `C = A·B` with the gemm crate (`x86-v4` kernels), on `threads` rayon threads.
#[cfg(feature = "gemm-anchor")]
fn gemm_crate(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut Array2<f32>, threads: usize) {
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: pointers and strides describe the three arrays; gemm computes
    // dst = alpha·dst + beta·lhs·rhs, here with alpha = 0 (dst not read) and beta = 1.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            false,
            a.as_ptr(),
            a.strides()[1],
            a.strides()[0],
            b.as_ptr(),
            b.strides()[1],
            b.strides()[0],
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Shape {
    m: usize,
    k: usize,
    n: usize,
    /// A is the transposed view of a k × m array (as Xᵀ in ∂W = gᵀ·x).
    a_transposed: bool,
    /// B is the transposed view of an n × k array (as Wᵀ in x·Wᵀ).
    b_transposed: bool,
}

impl Shape {
    /// `m,k,n[,at][,bt]`, as `--shape` and `scripts/bench_matmul.py` take it.
    fn arg(&self) -> String {
        format!(
            "{},{},{}{}{}",
            self.m,
            self.k,
            self.n,
            if self.a_transposed { ",at" } else { "" },
            if self.b_transposed { ",bt" } else { "" }
        )
    }

    /// `nn`, `tn`, `nt`: which operands are transposed views, as the numpy script names them.
    fn layout(&self) -> String {
        format!(
            "{}{}",
            if self.a_transposed { "t" } else { "n" },
            if self.b_transposed { "t" } else { "n" }
        )
    }
}

/// The matrix products of one training step of an MLP at a batch size, as its layers call them.
struct NetworkProducts {
    arch: String,
    batch: usize,
    products: Vec<Shape>,
}

/// For `bench matmul --arch A [--batch-size B]`: each layer `in → out` of each network runs
/// `x·Wᵀ` (B × in × out, W a transposed view), `gᵀ·x` (out × B × in, g a transposed view) and,
/// past the first layer, `g·W` (B × out × in).
fn network_products(args: &MatmulArgs) -> Result<Vec<NetworkProducts>> {
    let batches = if args.batch_sizes.is_empty() {
        vec![64, 256, 1024]
    } else {
        args.batch_sizes.clone()
    };
    let mut networks = Vec::new();
    for arch in &args.archs {
        let sizes = crate::train::parse_arch(arch)?;
        for &batch in &batches {
            let mut products = Vec::new();
            for (layer, pair) in sizes.windows(2).enumerate() {
                let (inputs, outputs) = (pair[0], pair[1]);
                products.push(Shape {
                    m: batch,
                    k: inputs,
                    n: outputs,
                    a_transposed: false,
                    b_transposed: true,
                });
                products.push(Shape {
                    m: outputs,
                    k: batch,
                    n: inputs,
                    a_transposed: true,
                    b_transposed: false,
                });
                if layer > 0 {
                    products.push(Shape {
                        m: batch,
                        k: outputs,
                        n: inputs,
                        a_transposed: false,
                        b_transposed: false,
                    });
                }
            }
            networks.push(NetworkProducts {
                arch: arch.clone(),
                batch,
                products,
            });
        }
    }
    Ok(networks)
}

/// Seconds of matrix products in an epoch of 60,000 samples for each network, thread count and
/// implementation measured at that thread count, and with the fastest implementation of each
/// product ("best of all"): a floor under the epoch of any implementation that computes these
/// products at the rates measured, whatever else it does.
fn print_epoch_products(networks: &[NetworkProducts], rows: &[serde_json::Value], json: bool) {
    const SAMPLES: f64 = 60_000.0;
    let rate = |shape: &Shape, implementation: &str, threads: usize| {
        rows.iter()
            .find(|r| {
                r["impl"] == implementation
                    && r["threads"] == threads
                    && r["m"] == shape.m
                    && r["k"] == shape.k
                    && r["n"] == shape.n
                    && r["layout"] == shape.layout().as_str()
            })
            .and_then(|r| r["gflops"].as_f64())
    };
    if !json {
        println!("\nmatrix products of one epoch of 60,000 samples (seconds, at the rates above):");
        println!("{:<16} {:>6} {:>8}  by implementation", "model", "batch", "threads");
    }
    for network in networks {
        for threads in [2, 1] {
            let epoch_seconds = |implementation: Option<&str>| -> Option<f64> {
                network
                    .products
                    .iter()
                    .map(|shape| {
                        let gflop = 2.0 * (shape.m * shape.k * shape.n) as f64 / 1e9;
                        let best = match implementation {
                            Some(name) => rate(shape, name, threads)?,
                            None => ["backprop", "pytorch", "numpy", "matrixmultiply", "gemm"]
                                .iter()
                                .filter_map(|name| rate(shape, name, threads))
                                .fold(f64::NAN, f64::max),
                        };
                        Some(gflop / best * SAMPLES / network.batch as f64)
                    })
                    .sum()
            };
            let mut cells = Vec::new();
            for name in ["backprop", "pytorch", "numpy", "matrixmultiply"] {
                if let Some(seconds) = epoch_seconds(Some(name)) {
                    cells.push((name, seconds));
                }
            }
            if let Some(seconds) = epoch_seconds(None) {
                cells.push(("best of all", seconds));
            }
            if json {
                let by_impl: serde_json::Map<String, serde_json::Value> =
                    cells.iter().map(|(name, s)| (name.to_string(), json!(s))).collect();
                println!(
                    "{}",
                    json!({"epoch_products": by_impl, "arch": network.arch, "batch": network.batch, "threads": threads})
                );
            } else {
                let text: Vec<String> = cells.iter().map(|(name, s)| format!("{name} {s:.3}")).collect();
                println!(
                    "{:<16} {:>6} {:>8}  {}",
                    network.arch,
                    network.batch,
                    threads,
                    text.join("  ")
                );
            }
        }
    }
}

fn parse_shape(text: &str) -> Result<Shape> {
    let parts: Vec<&str> = text.split(',').collect();
    let dims: Vec<usize> = parts
        .iter()
        .take(3)
        .map(|p| p.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--shape `{text}`: expected m,k,n[,at][,bt]"))?;
    anyhow::ensure!(
        dims.len() == 3 && dims.iter().all(|&d| d > 0),
        "--shape `{text}`: expected three positive sizes m,k,n"
    );
    Ok(Shape {
        m: dims[0],
        k: dims[1],
        n: dims[2],
        a_transposed: parts[3..].contains(&"at"),
        b_transposed: parts[3..].contains(&"bt"),
    })
}

fn matmul(args: &MatmulArgs) -> Result<()> {
    let networks = network_products(args)?;
    let shapes: Vec<Shape> = if !networks.is_empty() {
        let mut shapes: Vec<Shape> = Vec::new();
        for product in networks.iter().flat_map(|network| &network.products) {
            if !shapes.contains(product) {
                shapes.push(*product);
            }
        }
        shapes
    } else if !args.shapes.is_empty() {
        args.shapes.iter().map(|s| parse_shape(s)).collect::<Result<_>>()?
    } else if args.common.quick {
        ["64,784,50", "128,128,128"]
            .into_iter()
            .map(parse_shape)
            .collect::<Result<_>>()?
    } else {
        // The anchors, then the network's own layouts: x·Wᵀ (B a transposed view),
        // gᵀ·x (A a transposed view, n = 784) and g·W.
        [
            "256,256,256",
            "1024,1024,1024",
            "64,784,50",
            "256,784,50",
            "1024,784,50",
            "784,256,50,at",
            "10000,784,50",
            "64,784,50,bt",
            "1024,784,50,bt",
            "10000,784,50,bt",
            "50,64,784,at",
            "50,1024,784,at",
            "64,50,784",
        ]
        .into_iter()
        .map(parse_shape)
        .collect::<Result<_>>()?
    };
    let (samples, min_sample) = if args.common.quick { (3, 0.005) } else { (9, 0.05) };
    let peaks = [(1, fma_peak(1)), (2, fma_peak(2))];
    let peak = [peaks[0].1.gflops, peaks[1].1.gflops];
    if !args.common.json {
        println!("machine: {}", machine());
        println!("{}", describe(&peaks));
        if cfg!(not(feature = "gemm-anchor")) {
            println!("(the gemm crate anchor is opt-in: cargo run -p xtask --release --features gemm-anchor -- bench matmul)");
        }
        println!(
            "{:<22} {:>18} {:>8} {:>10} {:>8}",
            "impl", "m,k,n", "threads", "GFLOP/s", "% peak"
        );
    }
    let mut rows = Vec::new();
    for shape in &shapes {
        let (m, k, n) = (shape.m, shape.k, shape.n);
        let (a_store, b_store) = (
            operand(m, k, shape.a_transposed, 1),
            operand(k, n, shape.b_transposed, 2),
        );
        let (a, b) = (a_store.view(), b_store.view());
        let flops = 2.0 * (m * n * k) as f64;
        let size = m * n * k;
        let mut record = |name: &str, threads: usize, seconds: f64| {
            let gflops = flops / seconds / 1e9;
            let layout = shape.layout();
            rows.push(
                json!({"impl": name, "m": m, "k": k, "n": n, "threads": threads, "gflops": gflops, "layout": layout}),
            );
            if !args.common.json {
                let label = format!(
                    "{m},{k},{n}{}{}",
                    if shape.a_transposed { " (Aᵀ)" } else { "" },
                    if shape.b_transposed { " (Bᵀ)" } else { "" }
                );
                println!(
                    "{name:<22} {label:>18} {threads:>8} {gflops:>10.1} {:>7.0}%",
                    100.0 * gflops / peak[threads - 1]
                );
            }
        };
        for threads in [1, 2] {
            let p = pool(threads);
            let mut c = Array2::<f32>::zeros((m, n));
            // Inside the pool with its other workers kept polling, as the training loop runs
            // its products: otherwise a two-thread figure of a small product measures how
            // long a sleeping worker takes to wake as much as the product itself. The gemm
            // crate's rayon tasks run in the same pool the same way.
            let t = p.install(|| {
                backprop_train::engine::with_workers_awake(|| {
                    median_seconds(
                        || backprop_matmul::gemm(1.0, a, b, 0.0, c.view_mut()),
                        samples,
                        min_sample,
                    )
                })
            });
            record("backprop", threads, t);
            #[cfg(feature = "gemm-anchor")]
            {
                let t = p.install(|| {
                    backprop_train::engine::with_workers_awake(|| {
                        median_seconds(|| gemm_crate(a, b, &mut c, threads), samples, min_sample)
                    })
                });
                record("gemm", threads, t);
            }
            if threads == 1 {
                let t = median_seconds(|| std::mem::drop(ladder::packed(a, b)), samples, min_sample);
                record("packed", 1, t);
                let t = median_seconds(|| matrixmultiply_sgemm(a, b, &mut c), samples, min_sample);
                record("matrixmultiply", 1, t);
            }
            if !networks.is_empty() {
                // The networks' epochs compare the libraries; the ladder's slow rungs would
                // only take time.
                continue;
            }
            if size <= 1 << 31 {
                let t = p.install(|| median_seconds(|| std::mem::drop(ladder::blocked_parallel(a, b)), 3, min_sample));
                record("blocked_parallel", threads, t);
            }
            if threads == 1 && size <= 1 << 31 {
                let t = median_seconds(|| std::mem::drop(ladder::blocked(a, b)), 3, min_sample);
                record("blocked", 1, t);
            }
            if threads == 1 && size <= 1 << 25 {
                let t = median_seconds(|| std::mem::drop(ladder::naive_ikj(a, b)), 3, min_sample);
                record("naive_ikj", 1, t);
                let t = median_seconds(|| std::mem::drop(ladder::naive_ijk(a, b)), 3, min_sample);
                record("naive_ijk", 1, t);
            }
        }
    }
    // numpy and PyTorch, when they are installed: the same shapes (transposed operands as
    // transposed views, as the layers pass them) in a child process per thread count (BLAS
    // threads are fixed when the library loads).
    let mut script_args: Vec<String> = vec![
        "--samples".into(),
        samples.to_string(),
        "--min-sample".into(),
        min_sample.to_string(),
    ];
    script_args.extend(shapes.iter().map(Shape::arg));
    for threads in ["1", "2"] {
        let env = [
            ("OPENBLAS_NUM_THREADS", threads),
            ("OMP_NUM_THREADS", threads),
            ("MKL_NUM_THREADS", threads),
        ];
        let mut thread_args = vec!["--threads".to_string(), threads.to_string()];
        thread_args.extend(script_args.iter().cloned());
        match super::python::json_lines(&args.python.python, "bench_matmul.py", &thread_args, &env) {
            Ok(lines) => {
                for row in lines {
                    if !args.common.json {
                        let gflops = row["gflops"].as_f64().unwrap_or(f64::NAN);
                        let t = row["threads"].as_u64().unwrap_or(1) as usize;
                        let label = format!(
                            "{},{},{} {}",
                            row["m"],
                            row["k"],
                            row["n"],
                            row["layout"].as_str().unwrap_or("")
                        );
                        println!(
                            "{:<22} {label:>18} {t:>8} {gflops:>10.1} {:>7.0}%",
                            row["impl"].as_str().unwrap_or("?"),
                            100.0 * gflops / peak[t - 1]
                        );
                    }
                    rows.push(row);
                }
            }
            Err(e) => {
                eprintln!(
                    "numpy / PyTorch anchors skipped (`{} -c 'import numpy'` must work; set BACKPROP_PYTHON): {e}",
                    args.python.python
                );
                break;
            }
        }
    }
    if args.common.json {
        for row in &rows {
            println!("{row}");
        }
    }
    if !networks.is_empty() {
        print_epoch_products(&networks, &rows, args.common.json);
    }
    Ok(())
}
