//! `cargo xtask bench peak`: the FMA peak, the ceiling every GFLOP/s figure is a share of.
//!
//! The peak is the best of a loop of 256-bit FMAs (AVX2+FMA) and a loop of 512-bit FMAs
//! (AVX-512F), each run where the CPU has it (detected at run time). Neither width wins
//! everywhere: an Intel Xeon with two 512-bit FMA units doubles its rate with 512-bit
//! vectors, while AMD Zen 4 splits each 512-bit FMA into two 256-bit halves, so there a
//! 256-bit loop is faster than the 512-bit one. Taking the best of both keeps the peak a true
//! ceiling on every kind of machine.
//!
//! Each loop updates independent accumulators (`x ← x·a + b`), enough of them to keep every
//! FMA unit busy through the instruction's latency (units × latency in cycles: 2 × 4 or 2 × 5
//! on the CPUs we know), and few enough to stay in registers.

use anyhow::Result;
use clap::Args;
use serde_json::json;
use std::time::Instant;

#[derive(Args)]
pub struct PeakArgs {
    /// Thread counts to measure (repeatable).
    #[arg(long = "threads", default_values_t = [1, 2])]
    threads: Vec<usize>,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// An FMA loop of one vector width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FmaLoop {
    /// 256-bit vectors (AVX2+FMA), 12 accumulators: 12 of the 16 ymm registers, with the two
    /// constants beside them.
    Avx2,
    /// 512-bit vectors (AVX-512F), 16 accumulators of the 32 zmm registers.
    Avx512,
}

impl FmaLoop {
    pub fn name(self) -> &'static str {
        match self {
            FmaLoop::Avx2 => "256-bit AVX2+FMA",
            FmaLoop::Avx512 => "512-bit AVX-512F",
        }
    }

    /// The loops this CPU can run.
    pub fn available() -> Vec<FmaLoop> {
        let mut loops = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                loops.push(FmaLoop::Avx2);
            }
            if std::is_x86_feature_detected!("avx512f") {
                loops.push(FmaLoop::Avx512);
            }
        }
        loops
    }

    /// Single-precision GFLOP/s of this loop on `threads` threads at once: the best of five
    /// short runs, since on a shared machine one run can land on a busy moment (or on two
    /// vCPUs sharing a core) and understate the peak.
    pub fn gflops(self, threads: usize) -> f64 {
        let iterations = 4_000_000usize;
        let mut best = 0.0f64;
        for _ in 0..5 {
            let t = Instant::now();
            let sink: f32 = std::thread::scope(|s| {
                let handles: Vec<_> = (0..threads).map(|_| s.spawn(move || self.burn(iterations))).collect();
                handles.into_iter().map(|h| h.join().unwrap()).sum()
            });
            std::hint::black_box(sink);
            best = best.max(self.flops(iterations) * threads as f64 / t.elapsed().as_secs_f64() / 1e9);
        }
        best
    }

    /// Floating-point operations of one thread's `burn(iterations)`: 2 per lane of each FMA.
    fn flops(self, iterations: usize) -> f64 {
        let (accumulators, lanes) = match self {
            FmaLoop::Avx2 => (x86::ACCUMULATORS_256, 8),
            FmaLoop::Avx512 => (x86::ACCUMULATORS_512, 16),
        };
        (iterations * accumulators * lanes * 2) as f64
    }

    /// Runs the loop; the sum of the accumulators, so that the work cannot be optimized away.
    fn burn(self, iterations: usize) -> f32 {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `available` only lists a loop whose features the CPU has.
        unsafe {
            match self {
                FmaLoop::Avx2 => x86::burn_256(iterations),
                FmaLoop::Avx512 => x86::burn_512(iterations),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = iterations;
            unreachable!("no FMA loop is available off x86-64")
        }
    }
}

/// The FMA peak on some number of threads, and the loop that reached it.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    /// GFLOP/s; NaN where no loop runs (off x86-64, or without AVX2+FMA).
    pub gflops: f64,
    pub by: Option<FmaLoop>,
}

/// The best of the available loops on `threads` threads.
pub fn fma_peak(threads: usize) -> Peak {
    FmaLoop::available()
        .into_iter()
        .map(|l| Peak {
            gflops: l.gflops(threads),
            by: Some(l),
        })
        .fold(
            Peak {
                gflops: f64::NAN,
                by: None,
            },
            |best, p| {
                if best.gflops.is_nan() || p.gflops > best.gflops {
                    p
                } else {
                    best
                }
            },
        )
}

/// The FMA peaks of several thread counts, in one line: "FMA peak: P1 GFLOP/s on 1 thread, P2
/// on 2 (256-bit AVX2+FMA loop)"; each thread count names its own loop if they differ.
pub fn describe(peaks: &[(usize, Peak)]) -> String {
    let loop_of = |p: &Peak| p.by.map_or("no FMA loop on this CPU", FmaLoop::name);
    let same_loop = peaks.windows(2).all(|w| w[0].1.by == w[1].1.by);
    let parts: Vec<String> = peaks
        .iter()
        .enumerate()
        .map(|(i, (threads, p))| {
            let unit = if i == 0 { " GFLOP/s" } else { "" };
            let on = match (i, *threads) {
                (0, 1) => "on 1 thread".to_string(),
                (0, t) => format!("on {t} threads"),
                (_, t) => format!("on {t}"),
            };
            if same_loop {
                format!("{:.0}{unit} {on}", p.gflops)
            } else {
                format!("{:.0}{unit} {on} ({} loop)", p.gflops, loop_of(p))
            }
        })
        .collect();
    let mut text = format!("FMA peak: {}", parts.join(", "));
    if same_loop {
        if let Some((_, p)) = peaks.first() {
            text.push_str(&format!(" ({} loop)", loop_of(p)));
        }
    }
    text
}

pub fn run(args: &PeakArgs) -> Result<()> {
    let loops = FmaLoop::available();
    if !args.json {
        println!("machine: {}", super::timing::machine());
        if loops.is_empty() {
            println!("no FMA loop runs on this CPU (it needs AVX2+FMA or AVX-512F)");
        }
    }
    for &threads in &args.threads {
        anyhow::ensure!(threads > 0, "--threads must be at least 1");
        let readings: Vec<(FmaLoop, f64)> = loops.iter().map(|&l| (l, l.gflops(threads))).collect();
        let best = readings.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        if args.json {
            for (l, gflops) in &readings {
                println!(
                    "{}",
                    json!({"loop": l.name(), "threads": threads, "gflops": gflops, "best": Some(*l) == best.map(|b| b.0)})
                );
            }
        } else {
            let text: Vec<String> = readings
                .iter()
                .map(|(l, g)| {
                    let mark = if Some(*l) == best.map(|b| b.0) { " (peak)" } else { "" };
                    format!("{} {g:.0} GFLOP/s{mark}", l.name())
                })
                .collect();
            println!(
                "{threads} thread{}: {}",
                if threads == 1 { "" } else { "s" },
                text.join(", ")
            );
        }
    }
    Ok(())
}

/// The loops themselves.
mod x86 {
    pub const ACCUMULATORS_256: usize = 12;
    pub const ACCUMULATORS_512: usize = 16;

    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn burn_256(iterations: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm256_set1_ps(1.0); ACCUMULATORS_256];
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        for _ in 0..iterations {
            for x in acc.iter_mut() {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut s = _mm256_setzero_ps();
        for x in acc {
            s = _mm256_add_ps(s, x);
        }
        let mut lanes = [0.0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), s);
        lanes.iter().sum()
    }

    /// # Safety
    /// The CPU must have AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn burn_512(iterations: usize) -> f32 {
        use std::arch::x86_64::*;
        let mut acc = [_mm512_set1_ps(1.0); ACCUMULATORS_512];
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_names_the_loop_once_when_all_agree() {
        let p = |gflops| Peak {
            gflops,
            by: Some(FmaLoop::Avx2),
        };
        assert_eq!(
            describe(&[(1, p(70.4)), (2, p(139.6))]),
            "FMA peak: 70 GFLOP/s on 1 thread, 140 on 2 (256-bit AVX2+FMA loop)"
        );
        let q = Peak {
            gflops: 96.0,
            by: Some(FmaLoop::Avx512),
        };
        assert_eq!(
            describe(&[(1, p(115.0)), (2, q)]),
            "FMA peak: 115 GFLOP/s on 1 thread (256-bit AVX2+FMA loop), 96 on 2 (512-bit AVX-512F loop)"
        );
    }

    #[test]
    fn the_peak_is_the_best_available_loop() {
        let peak = fma_peak(1);
        let loops = FmaLoop::available();
        assert_eq!(peak.by.is_some(), !loops.is_empty());
        if let Some(l) = peak.by {
            assert!(loops.contains(&l));
            assert!(peak.gflops > 0.0);
        }
    }
}
