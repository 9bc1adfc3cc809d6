//! `cargo xtask bench train`: seconds per epoch of MLPs on MNIST, beside the same loop in
//! PyTorch eager (`scripts/bench_train.py`), and each cell's share of the FMA peak.

use std::path::PathBuf;

use anyhow::{Context, Result};
use backprop_data::{dataset, DatasetSpec, SplitScheme, Splits};
use backprop_init::{rng, Init};
use backprop_model::mlp;
use backprop_train::{fit, FitConfig, Schedule, Sgd, Task, TrainState};
use clap::Args;
use serde_json::json;

use super::peak::{describe, fma_peak, Peak};
use super::timing::{machine, pool};
use super::{Common, PythonArg};

#[derive(Args)]
pub struct TrainArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    python: PythonArg,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Only these architectures, e.g. `784-256-10` (repeatable) [default: 784-50-10,
    /// 784-256-10 and 784-256-256-10; with --quick: 784-50-10].
    #[arg(long = "arch", value_name = "SIZES")]
    archs: Vec<String>,
    /// Only these batch sizes (repeatable) [default: 64, 256 and 1024; with --quick: 256].
    #[arg(long = "batch-size", value_name = "B")]
    batch_sizes: Vec<usize>,
    /// Only these thread counts (repeatable).
    #[arg(long = "threads", value_name = "N", default_values_t = [2, 1])]
    threads: Vec<usize>,
    /// Timed epochs per cell, after one warm-up epoch; the median is reported (with --quick: 1).
    #[arg(long, default_value_t = 5)]
    epochs: usize,
}

/// Floating-point operations of an epoch's matrix products over `samples` samples: for each
/// layer `in → out`, the forward product `x·Wᵀ` (2·N·in·out), the weight gradient `gᵀ·x`
/// (2·N·in·out), and past the first layer the input gradient `g·W` (2·N·in·out; the first
/// layer's input is the data, which needs no gradient).
fn epoch_product_flops(arch: &[usize], samples: usize) -> f64 {
    arch.windows(2)
        .enumerate()
        .map(|(layer, pair)| {
            let products = if layer == 0 { 2.0 } else { 3.0 };
            products * 2.0 * (samples * pair[0] * pair[1]) as f64
        })
        .sum()
}

/// The share of the FMA peak that an epoch of `flops` in `seconds` reaches.
fn peak_share(flops: f64, seconds: f64, peak: &Peak) -> f64 {
    flops / (seconds * peak.gflops * 1e9)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let (json_out, quick) = (args.common.json, args.common.quick);
    anyhow::ensure!(args.threads.iter().all(|&t| t > 0), "--threads must be at least 1");
    let dir = crate::data_dir(args.data_dir.as_deref());
    let raw = dataset::load(&DatasetSpec::mnist(), &dir)?;
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 })?;
    let models: Vec<Vec<usize>> = if !args.archs.is_empty() {
        args.archs
            .iter()
            .map(|a| crate::train::parse_arch(a))
            .collect::<Result<_>>()?
    } else if quick {
        vec![vec![784, 50, 10]]
    } else {
        vec![vec![784, 50, 10], vec![784, 256, 10], vec![784, 256, 256, 10]]
    };
    let batches: Vec<usize> = if !args.batch_sizes.is_empty() {
        args.batch_sizes.clone()
    } else if quick {
        vec![256]
    } else {
        vec![64, 256, 1024]
    };
    let thread_counts = &args.threads;
    let timed_epochs = if quick { 1 } else { args.epochs };
    // The peak of each thread count, measured in this run: the cells' shares are of it.
    let mut peaks: Vec<(usize, Peak)> = Vec::new();
    let mut counts = thread_counts.clone();
    counts.sort_unstable();
    counts.dedup();
    for threads in counts {
        peaks.push((threads, fma_peak(threads)));
    }
    let peak_of = |threads: usize| peaks.iter().find(|(t, _)| *t == threads).map(|(_, p)| *p);
    if json_out {
        for (threads, p) in &peaks {
            println!(
                "{}",
                json!({"fma_peak_gflops": p.gflops, "loop": p.by.map(|l| l.name()), "threads": threads})
            );
        }
    } else {
        println!("machine: {}", machine());
        println!("{}", describe(&peaks));
        if let (Some(one), Some(two)) = (peak_of(1), peak_of(2)) {
            if two.gflops < 1.6 * one.gflops {
                println!(
                    "note: two threads reach only {:.1}x one thread's peak now: the two CPUs share a core \
                     (or another program is busy), so 2-thread figures of this run understate",
                    two.gflops / one.gflops
                );
            }
        }
        println!(
            "one epoch of {} MNIST samples, plain SGD (lr 0.05), median of {timed_epochs} epochs after one warm-up",
            splits.train.len()
        );
        println!("% peak: the epoch's matrix products (FLOPs) ÷ (seconds × the FMA peak of its thread count)");
    }
    // PyTorch runs beside us, cell by cell, as a shared machine's speed drifts over minutes:
    // each cell is timed for both, the order alternating from cell to cell.
    let mut torch = match TorchAnchor::start(&args.python.python, &dir, timed_epochs) {
        Ok(anchor) => Some(anchor),
        Err(e) => {
            eprintln!(
                "PyTorch anchor skipped (`{} -c 'import torch'` must work; set BACKPROP_PYTHON): {e:#}",
                args.python.python
            );
            None
        }
    };
    if !json_out {
        println!(
            "{:<16} {:>6} {:>8} {:>14} {:>7} {:>14} {:>7} {:>9}",
            "model", "batch", "threads", "backprop (s)", "% peak", "pytorch (s)", "% peak", "speed-up"
        );
    }
    let mut cell = 0;
    for arch in &models {
        let flops = epoch_product_flops(arch, splits.train.len());
        for &batch in &batches {
            for &threads in thread_counts {
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
                let peak = peak_of(threads).expect("measured for every thread count");
                let share = |seconds: f64| peak_share(flops, seconds, &peak);
                let name = arch.iter().map(|s| s.to_string()).collect::<Vec<_>>().join("-");
                if json_out {
                    println!(
                        "{}",
                        json!({"impl": "backprop", "model": name, "batch": batch, "threads": threads,
                               "seconds": ours, "product_flops": flops, "peak_share": share(ours)})
                    );
                    if let Some(t) = torch_seconds {
                        println!(
                            "{}",
                            json!({"impl": "pytorch", "model": name, "batch": batch, "threads": threads,
                                   "seconds": t, "product_flops": flops, "peak_share": share(t)})
                        );
                    }
                } else {
                    let percent = |seconds: f64| format!("{:.0}%", 100.0 * share(seconds));
                    println!(
                        "{name:<16} {batch:>6} {threads:>8} {ours:>14.3} {:>7} {:>14} {:>7} {:>9}",
                        percent(ours),
                        torch_seconds.map_or("-".into(), |t| format!("{t:.3}")),
                        torch_seconds.map_or("-".into(), percent),
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

/// The same training loop in PyTorch eager (`scripts/bench_train.py`): one Python process that
/// loads MNIST once, then times one cell per request line (`784-50-10 64 2`) and answers with
/// the median seconds.
struct TorchAnchor {
    child: std::process::Child,
    requests: std::process::ChildStdin,
    answers: std::io::BufReader<std::process::ChildStdout>,
    /// Reads the process's stderr as it comes (so a chatty process never blocks on a full
    /// pipe) and returns it at the end.
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl TorchAnchor {
    fn start(python: &str, data_dir: &std::path::Path, timed_epochs: usize) -> Result<Self> {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = super::python::command(python, "bench_train.py")?
            .arg(data_dir)
            .arg("--epochs")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_counts_three_products_a_layer_but_two_for_the_first() {
        // 784-50-10 over 60,000 samples: 2 products of 784 × 50, 3 of 50 × 10.
        let expected = 2.0 * 60_000.0 * (2.0 * 784.0 * 50.0 + 3.0 * 50.0 * 10.0);
        assert_eq!(epoch_product_flops(&[784, 50, 10], 60_000), expected);
        let peak = Peak {
            gflops: 100.0,
            by: None,
        };
        assert!((peak_share(expected, expected / 50e9, &peak) - 0.5).abs() < 1e-12);
    }
}
