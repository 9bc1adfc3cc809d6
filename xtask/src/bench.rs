//! `cargo xtask bench matmul | train | data`: medians, thread counts, anchors side by side.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use backprop_data::{dataset, DataLoader, DatasetSpec, Order, SplitScheme, Splits};
use backprop_init::{rng, Init};
use backprop_matmul::ladder;
use backprop_model::mlp;
use backprop_train::{fit, FitConfig, Schedule, Sgd, Task, TrainState};
use clap::{Args, ValueEnum};
use ndarray::{Array2, ArrayView2};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum What {
    Matmul,
    Train,
    Data,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(value_enum)]
    what: What,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Fewer shapes and repetitions (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only these matmul shapes: `m,k,n` (append `,at` for A as a transposed view, `,bt` for B).
    #[arg(long = "shape")]
    shapes: Vec<String>,
    /// `bench matmul`: instead of the table, every square size from 1 to 2048 that is a power
    /// of two, one less or one more, plus odd sizes between, on one thread, against
    /// matrixmultiply; lists any size where this crate is slower.
    #[arg(long)]
    sweep: bool,
    /// `bench train`: only these architectures, e.g. `784-256-10` (repeatable). `bench matmul`:
    /// the products of these networks' training steps, and their sum over an epoch.
    #[arg(long = "arch")]
    archs: Vec<String>,
    /// `bench train` (and `bench matmul --arch`): only these batch sizes (repeatable).
    #[arg(long = "batch-size")]
    batch_sizes: Vec<usize>,
    /// `bench train`: only these thread counts (repeatable; default 2 and 1).
    #[arg(long = "threads")]
    threads: Vec<usize>,
    /// `bench train`: timed epochs per cell (after one warm-up epoch); the median is reported.
    #[arg(long, default_value_t = 5)]
    epochs: usize,
    /// The Python interpreter for the numpy / PyTorch anchors.
    #[arg(long, env = "BACKPROP_PYTHON", default_value = "python3")]
    python: String,
}

pub fn run(args: BenchArgs) -> Result<()> {
    match args.what {
        What::Matmul => matmul(&args),
        What::Train => train(&args),
        What::Data => data(&args),
    }
}

/// Median seconds per call of `f`: calibrated so that one sample lasts ≥ `min_sample` seconds,
/// then `samples` samples.
fn median_seconds(mut f: impl FnMut(), samples: usize, min_sample: f64) -> f64 {
    let iterations = calibrate(&mut f, min_sample);
    median((0..samples).map(|_| seconds_per_call(&mut f, iterations)).collect())
}

/// The median seconds per call of two functions measured in alternation: each sample times
/// both, one after the other, the first of the pair alternating from sample to sample. So a
/// slow spell of a shared machine (they last seconds here) falls on both, and neither always
/// runs first. Iterations per sample are calibrated for each function as in [`median_seconds`].
fn interleaved_median_seconds(
    mut first: impl FnMut(),
    mut second: impl FnMut(),
    samples: usize,
    min_sample: f64,
) -> (f64, f64) {
    let (first_iterations, second_iterations) = (calibrate(&mut first, min_sample), calibrate(&mut second, min_sample));
    let (mut first_times, mut second_times) = (Vec::new(), Vec::new());
    for sample in 0..samples {
        if sample % 2 == 0 {
            first_times.push(seconds_per_call(&mut first, first_iterations));
            second_times.push(seconds_per_call(&mut second, second_iterations));
        } else {
            second_times.push(seconds_per_call(&mut second, second_iterations));
            first_times.push(seconds_per_call(&mut first, first_iterations));
        }
    }
    (median(first_times), median(second_times))
}

/// Calls per sample: after a warm-up call, doubled until a sample lasts ≥ `min_sample` seconds.
fn calibrate(f: &mut dyn FnMut(), min_sample: f64) -> usize {
    f();
    let mut iterations = 1usize;
    while iterations < 1 << 20 && seconds_per_call(f, iterations) * (iterations as f64) < min_sample {
        iterations *= 2;
    }
    iterations
}

/// `iterations` calls of `f`, timed together: seconds per call.
fn seconds_per_call(f: &mut dyn FnMut(), iterations: usize) -> f64 {
    let t = Instant::now();
    for _ in 0..iterations {
        f();
    }
    t.elapsed().as_secs_f64() / iterations as f64
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    format!("{model}, {cores} cores, kernel {}", backprop_matmul::detect().name())
}

/// Peak single-precision GFLOP/s of FMA on `threads` threads (independent accumulators).
fn fma_peak(threads: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            #[target_feature(enable = "avx512f")]
            unsafe fn burn(iterations: usize) -> f32 {
                use std::arch::x86_64::*;
                let mut acc = [_mm512_set1_ps(1.0); 12];
                let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
                for _ in 0..iterations {
                    for x in acc.iter_mut() {
                        *x = _mm512_fmadd_ps(*x, a, b);
                    }
                }
                let mut s = _mm512_setzero_ps();
                for x in acc {
                    s = _mm512_add_ps(s, x);
                }
                _mm512_reduce_add_ps(s)
            }
            // The best of five short runs: on a shared machine a single run can land on a busy
            // moment (or on both vCPUs sharing a core) and understate the peak.
            let iterations = 4_000_000usize;
            let mut best = 0.0f64;
            for _ in 0..5 {
                let t = Instant::now();
                let sink: f32 = std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|_| s.spawn(move || unsafe { burn(iterations) }))
                        .collect();
                    handles.into_iter().map(|h| h.join().unwrap()).sum()
                });
                std::hint::black_box(sink);
                best = best.max((threads * iterations * 12 * 16 * 2) as f64 / t.elapsed().as_secs_f64() / 1e9);
            }
            return best;
        }
    }
    let _ = threads;
    f64::NAN
}

fn random(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
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
fn matrixmultiply_sgemm(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut Array2<f32>) {
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
fn network_products(args: &BenchArgs) -> Result<Vec<NetworkProducts>> {
    let batches = if args.batch_sizes.is_empty() {
        vec![64, 256, 1024]
    } else {
        args.batch_sizes.clone()
    };
    let mut networks = Vec::new();
    for arch in &args.archs {
        let sizes = crate::train_cmd::parse_arch(arch)?;
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

fn matmul(args: &BenchArgs) -> Result<()> {
    if args.sweep {
        return sweep(args);
    }
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
    } else if args.quick {
        ["64,784,50", "128,128,128"]
            .into_iter()
            .map(parse_shape)
            .collect::<Result<_>>()?
    } else {
        // The issue's anchors, then the network's own layouts: x·Wᵀ (B a transposed view),
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
    let (samples, min_sample) = if args.quick { (3, 0.005) } else { (9, 0.05) };
    let peak = [fma_peak(1), fma_peak(2)];
    if !args.json {
        println!("machine: {}", machine());
        println!("FMA peak: {:.0} GFLOP/s on 1 thread, {:.0} on 2", peak[0], peak[1]);
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
            if !args.json {
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
            // its products: otherwise a two-thread figure measures how long a sleeping
            // worker takes to wake (10-50 µs) as much as the product (e.g. 256 × 64 × 784
            // Aᵀ, ~75 µs a half, read 167-215 GFLOP/s on two threads of an Intel Xeon that
            // way). The gemm crate's rayon tasks run in the same pool the same way.
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
    // threads are fixed when the library loads). numpy's wheels multiply with OpenBLAS,
    // PyTorch's with MKL on x86-64.
    let shape_list: Vec<_> = shapes
        .iter()
        .map(|s| json!([s.m, s.k, s.n, s.a_transposed, s.b_transposed]))
        .collect();
    let script = format!(
        r#"
import json, os, time, numpy as np
threads = int(os.environ["OPENBLAS_NUM_THREADS"])
try:
    import torch
    torch.set_num_threads(threads)
except ImportError:
    torch = None
def gflops(f, m, k, n):
    f()
    it = 1
    while True:
        t = time.perf_counter()
        for _ in range(it): f()
        if time.perf_counter() - t > {min_sample}: break
        it *= 2
    ts = []
    for _ in range({samples}):
        t = time.perf_counter()
        for _ in range(it): f()
        ts.append((time.perf_counter() - t) / it)
    ts.sort()
    return 2*m*n*k/ts[len(ts)//2]/1e9
for m, k, n, at, bt in {shapes}:
    a = (np.random.rand(k, m).astype(np.float32).T if at else np.random.rand(m, k).astype(np.float32))
    b = (np.random.rand(n, k).astype(np.float32).T if bt else np.random.rand(k, n).astype(np.float32))
    layout = ("t" if at else "n") + ("t" if bt else "n")
    row = {{"m": m, "k": k, "n": n, "threads": threads, "layout": layout}}
    print(json.dumps(dict(row, impl="numpy", gflops=gflops(lambda: a @ b, m, k, n))), flush=True)
    if torch is not None:
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        c = torch.empty(m, n)
        print(json.dumps(dict(row, impl="pytorch", gflops=gflops(lambda: torch.mm(ta, tb, out=c), m, k, n))), flush=True)
"#,
        shapes = serde_json::to_string(&shape_list)?
            .replace("true", "True")
            .replace("false", "False"),
    );
    for threads in ["1", "2"] {
        let env = [
            ("OPENBLAS_NUM_THREADS", threads),
            ("OMP_NUM_THREADS", threads),
            ("MKL_NUM_THREADS", threads),
        ];
        match run_python(&args.python, &script, &env) {
            Ok(lines) => {
                for row in lines {
                    if !args.json {
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
                    args.python
                );
                break;
            }
        }
    }
    if args.json {
        for row in &rows {
            println!("{row}");
        }
    }
    if !networks.is_empty() {
        print_epoch_products(&networks, &rows, args.json);
    }
    Ok(())
}

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

/// `bench matmul --sweep`: square products of every size in [`sweep_sizes`], this crate against
/// matrixmultiply, one thread, measured in alternation ([`interleaved_median_seconds`]).
fn sweep(args: &BenchArgs) -> Result<()> {
    let (samples, min_sample) = if args.quick { (3, 0.002) } else { (7, 0.02) };
    if !args.json {
        println!("machine: {}", machine());
        println!("square products C = A·B, one thread, median GFLOP/s");
        println!("{:>6} {:>10} {:>15} {:>7}", "n", "backprop", "matrixmultiply", "ratio");
    }
    let mut slower = Vec::new();
    let p = pool(1);
    for n in sweep_sizes(args.quick) {
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
        if args.json {
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
    if !args.json {
        if slower.is_empty() {
            println!("never slower than matrixmultiply at these sizes");
        } else {
            println!("slower than matrixmultiply at n = {slower:?}");
        }
    }
    Ok(())
}

/// Runs a Python script and parses each stdout line as JSON.
fn run_python(python: &str, script: &str, env: &[(&str, &str)]) -> Result<Vec<serde_json::Value>> {
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script).env_remove("OPENBLAS_CORETYPE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().with_context(|| format!("running {python}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{python} failed: {}",
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).context("parsing the anchor's output"))
        .collect()
}

fn train(args: &BenchArgs) -> Result<()> {
    let dir = crate::data_dir(args.data_dir.as_deref());
    let raw = dataset::load(&DatasetSpec::mnist(), &dir)?;
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 })?;
    let models: Vec<Vec<usize>> = if !args.archs.is_empty() {
        args.archs
            .iter()
            .map(|a| crate::train_cmd::parse_arch(a))
            .collect::<Result<_>>()?
    } else if args.quick {
        vec![vec![784, 50, 10]]
    } else {
        vec![vec![784, 50, 10], vec![784, 256, 10], vec![784, 256, 256, 10]]
    };
    let batches: Vec<usize> = if !args.batch_sizes.is_empty() {
        args.batch_sizes.clone()
    } else if args.quick {
        vec![256]
    } else {
        vec![64, 256, 1024]
    };
    let thread_counts: Vec<usize> = if args.threads.is_empty() {
        vec![2, 1]
    } else {
        args.threads.clone()
    };
    let timed_epochs = if args.quick { 1 } else { args.epochs };
    if !args.json {
        println!("machine: {}", machine());
        let peak = [fma_peak(1), fma_peak(2)];
        println!("FMA peak: {:.0} GFLOP/s on 1 thread, {:.0} on 2", peak[0], peak[1]);
        if peak[1] < 1.6 * peak[0] {
            println!(
                "note: two threads reach only {:.1}x one thread's peak now: the two CPUs share a core \
                 (or another program is busy), so 2-thread figures of this run understate",
                peak[1] / peak[0]
            );
        }
        println!(
            "one epoch of {} MNIST samples, plain SGD (lr 0.05), median of {timed_epochs} epochs after one warm-up",
            splits.train.len()
        );
    }
    // PyTorch runs beside us, cell by cell (this machine's speed drifts 10-30% over minutes):
    // each cell is timed for both, the order alternating from cell to cell.
    let mut torch = match TorchAnchor::start(&args.python, &dir, timed_epochs) {
        Ok(anchor) => Some(anchor),
        Err(e) => {
            eprintln!(
                "PyTorch anchor skipped (`{} -c 'import torch'` must work; set BACKPROP_PYTHON): {e:#}",
                args.python
            );
            None
        }
    };
    if !args.json {
        println!(
            "{:<16} {:>6} {:>8} {:>14} {:>14} {:>9}",
            "model", "batch", "threads", "backprop (s)", "pytorch (s)", "speed-up"
        );
    }
    let mut cell = 0;
    for arch in &models {
        for &batch in &batches {
            for &threads in &thread_counts {
                let torch_first = cell % 2 == 1;
                cell += 1;
                let mut torch_seconds = None;
                if torch_first {
                    torch_seconds = torch_cell(&mut torch, arch, batch, threads);
                }
                let ours = bench_train_cell(&splits, arch, batch, threads, timed_epochs)?;
                if !torch_first {
                    torch_seconds = torch_cell(&mut torch, arch, batch, threads);
                }
                let name = arch.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
                if args.json {
                    println!(
                        "{}",
                        json!({"impl": "backprop", "model": name, "batch": batch, "threads": threads, "seconds": ours})
                    );
                    if let Some(t) = torch_seconds {
                        println!(
                            "{}",
                            json!({"impl": "pytorch", "model": name, "batch": batch, "threads": threads, "seconds": t})
                        );
                    }
                } else {
                    println!(
                        "{name:<16} {batch:>6} {threads:>8} {ours:>14.3} {:>14} {:>9}",
                        torch_seconds.map_or("-".into(), |t| format!("{t:.3}")),
                        torch_seconds.map_or("-".into(), |t| format!("{:.1}x", t / ours))
                    );
                }
            }
        }
    }
    Ok(())
}

/// The median seconds of `timed_epochs` epochs of plain SGD after one warm-up epoch.
fn bench_train_cell(splits: &Splits, arch: &[usize], batch: usize, threads: usize, timed_epochs: usize) -> Result<f64> {
    let p = pool(threads);
    let mut model = mlp(arch, Init::KAIMING_RELU, &mut rng(0));
    let mut sgd = Sgd::new(0.0, 0.0);
    let mut state = TrainState::default();
    let mut epochs = Vec::new();
    for e in 0..=timed_epochs {
        let config = FitConfig {
            epochs: e + 1,
            batch_size: batch,
            lr: 0.05,
            schedule: Schedule::Constant,
            momentum: 0.0,
            weight_decay: 0.0,
            seed: 0,
            task: Task::Classification,
        };
        let reports = p.install(|| {
            fit(
                &mut model,
                &mut sgd,
                &mut state,
                &splits.train,
                None,
                &splits.normalization,
                &config,
                &mut (),
            )
        })?;
        epochs.push(reports[0].seconds);
    }
    let mut timed = epochs[1..].to_vec();
    timed.sort_by(f64::total_cmp);
    Ok(timed[timed.len() / 2])
}

/// One cell of the PyTorch side, or `None` (said once) when the anchor is absent or fails.
fn torch_cell(torch: &mut Option<TorchAnchor>, arch: &[usize], batch: usize, threads: usize) -> Option<f64> {
    let result = torch.as_mut()?.run(arch, batch, threads);
    match result {
        Ok(seconds) => Some(seconds),
        Err(e) => {
            eprintln!("PyTorch anchor stopped: {e:#}");
            *torch = None;
            None
        }
    }
}

/// The same training loop in PyTorch eager: one Python process that loads MNIST once, then
/// times one cell per request line (`784-50-10 64 2`) and answers with the median seconds.
struct TorchAnchor {
    child: std::process::Child,
    requests: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
    /// Reads the process's stderr as it comes (so a chatty process never blocks on a full
    /// pipe) and returns it at the end.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl TorchAnchor {
    const SCRIPT: &'static str = r#"
import gzip, json, sys, time, numpy as np, torch
def idx(path, off):
    with gzip.open(path, 'rb') as f: return np.frombuffer(f.read(), np.uint8, offset=off)
data, epochs = sys.argv[1], int(sys.argv[2])
x = idx(data + '/mnist/train-images-idx3-ubyte.gz', 16).reshape(-1, 784).astype(np.float32) / 255
y = torch.from_numpy(idx(data + '/mnist/train-labels-idx1-ubyte.gz', 8).astype(np.int64))
x = torch.from_numpy((x - x.mean()) / x.std())
print('ready', flush=True)
for request in sys.stdin:
    arch, batch, threads = request.split()
    arch, batch, threads = [int(v) for v in arch.split('-')], int(batch), int(threads)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layers = []
    for i in range(len(arch) - 1):
        if i: layers.append(torch.nn.ReLU())
        layers.append(torch.nn.Linear(arch[i], arch[i + 1]))
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    times = []
    for e in range(epochs + 1):
        t = time.perf_counter()
        perm = torch.randperm(len(x))
        for s in range(0, len(x), batch):
            i = perm[s:s + batch]
            loss = torch.nn.functional.cross_entropy(model(x[i]), y[i])
            opt.zero_grad(); loss.backward(); opt.step()
        times.append(time.perf_counter() - t)
    times = sorted(times[1:])
    print(json.dumps({"seconds": times[len(times) // 2]}), flush=True)
"#;

    fn start(python: &str, data_dir: &std::path::Path, timed_epochs: usize) -> Result<Self> {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = Command::new(python)
            .arg("-c")
            .arg(Self::SCRIPT)
            .arg(data_dir)
            .arg(timed_epochs.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {python}"))?;
        let requests = child.stdin.take().expect("piped");
        let mut answers = std::io::BufReader::new(child.stdout.take().expect("piped"));
        let mut stderr = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            text
        });
        let mut line = String::new();
        answers.read_line(&mut line)?;
        let mut anchor = TorchAnchor {
            child,
            requests,
            answers,
            stderr: Some(stderr),
        };
        if line.trim() != "ready" {
            return Err(anchor.failure());
        }
        Ok(anchor)
    }

    fn run(&mut self, arch: &[usize], batch: usize, threads: usize) -> Result<f64> {
        use std::io::{BufRead, Write};
        let arch = arch.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
        let mut line = String::new();
        let answered = writeln!(self.requests, "{arch} {batch} {threads}")
            .and_then(|()| self.requests.flush())
            .and_then(|()| self.answers.read_line(&mut line));
        if answered.is_err() || line.is_empty() {
            return Err(self.failure());
        }
        let answer: serde_json::Value = serde_json::from_str(&line).context("parsing PyTorch's answer")?;
        answer["seconds"]
            .as_f64()
            .with_context(|| format!("PyTorch answered {line}"))
    }

    /// The error of a process that stopped: the last line it wrote to stderr.
    fn failure(&mut self) -> anyhow::Error {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr.take().and_then(|t| t.join().ok()).unwrap_or_default();
        anyhow::anyhow!(
            "{}",
            stderr.lines().last().unwrap_or("the process ended without a message")
        )
    }
}

impl Drop for TorchAnchor {
    fn drop(&mut self) {
        // It waits for the next request: end it, and reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn data(args: &BenchArgs) -> Result<()> {
    let dir = crate::data_dir(args.data_dir.as_deref());
    let spec = DatasetSpec::mnist();
    let samples = if args.quick { 1 } else { 5 };
    let load = median_seconds(
        || std::mem::drop(dataset::load(&spec, &dir).expect("MNIST loads")),
        samples,
        0.0,
    );
    let raw = dataset::load(&spec, &dir)?;
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 })?;
    let mut epoch_seconds = Vec::new();
    for batch in [64, 1024] {
        let mut loader = DataLoader::new(&splits.train, &splits.normalization, batch, Order::Shuffled { seed: 0 })?;
        let mut e = 0u64;
        let t = median_seconds(
            || {
                let mut epoch = loader.epoch(e);
                e += 1;
                while let Some(b) = epoch.next_batch() {
                    std::hint::black_box(b.x[[0, 0]]);
                }
            },
            samples,
            0.0,
        );
        epoch_seconds.push((batch, t));
    }
    if args.json {
        println!(
            "{}",
            json!({"load_seconds": load, "epoch_seconds": epoch_seconds.iter().map(|(b, t)| json!({"batch": b, "seconds": t})).collect::<Vec<_>>()})
        );
    } else {
        println!("machine: {}", machine());
        println!(
            "load and decode the four MNIST files: {:.3} s (median of {samples})",
            load
        );
        for (batch, t) in epoch_seconds {
            println!("one shuffled epoch of 60,000 samples, batch {batch}: {:.4} s", t);
        }
    }
    Ok(())
}
