//! Timing shared by the benchmarks: calibrated medians, alternating pairs, pools, the machine.

use std::time::Instant;

/// Median seconds per call of `f`: calibrated so that one sample lasts ≥ `min_sample` seconds,
/// then `samples` samples.
pub fn median_seconds(mut f: impl FnMut(), samples: usize, min_sample: f64) -> f64 {
    let iterations = calibrate(&mut f, min_sample);
    median((0..samples).map(|_| seconds_per_call(&mut f, iterations)).collect())
}

/// The median seconds per call of two functions measured in alternation: each sample times
/// both, one after the other, the first of the pair alternating from sample to sample. So a
/// slow spell of a shared machine falls on both, and neither always
/// runs first. Iterations per sample are calibrated for each function as in [`median_seconds`].
pub fn interleaved_median_seconds(
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

pub fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

pub fn machine() -> String {
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
