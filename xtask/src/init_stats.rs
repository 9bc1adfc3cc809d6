//! `cargo xtask init-stats`: the initialization experiments of lesson 8 (`02_fully_connected`)
//! and `02b_initializing`, over many weight draws.

use crate::output::{errln, outln};
use std::path::PathBuf;

use anyhow::Result;
use backprop_data::SplitScheme;
use backprop_init::{rng, Init};
use clap::Args;
use ndarray::Array2;
use rayon::prelude::*;
use serde_json::json;

use crate::plot::{write_picture, Figure, Panel, Series};

#[derive(Args)]
pub struct InitStatsArgs {
    /// Weight draws per scheme (one draw is noise).
    #[arg(long, default_value_t = 100)]
    draws: u64,
    /// Hidden width of the first experiment.
    #[arg(long, default_value_t = 50)]
    hidden: usize,
    /// Layers of the deep stack.
    #[arg(long, default_value_t = 100)]
    depth: usize,
    /// Width of the deep stack.
    #[arg(long, default_value_t = 512)]
    width: usize,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Draw the per-layer std of the deep stack (first draw of each scheme, log axis) to this
    /// PNG, and beside it the same picture as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

/// One draw of the deep stack: the std after each layer, and where it exploded or vanished.
type DeepRun = (Vec<f64>, Option<(usize, &'static str)>);

/// "explodes 10/10 (layers 20-21)", "stable 7/10, explodes 3/10 (layers 84-99)".
fn describe_events(runs: &[DeepRun]) -> String {
    let n = runs.len();
    let mut parts = Vec::new();
    let stable = runs.iter().filter(|(_, e)| e.is_none()).count();
    if stable > 0 {
        parts.push(format!("stable {stable}/{n}"));
    }
    for what in ["explodes", "vanishes"] {
        let layers: Vec<usize> = runs
            .iter()
            .filter_map(|(_, e)| e.filter(|(_, w)| *w == what).map(|(l, _)| l))
            .collect();
        if let (Some(lo), Some(hi)) = (layers.iter().min(), layers.iter().max()) {
            let span = if lo == hi {
                format!("layer {lo}")
            } else {
                format!("layers {lo}-{hi}")
            };
            parts.push(format!("{what} {}/{n} ({span})", layers.len()));
        }
    }
    parts.join(", ")
}

/// The first experiment's schemes: (name, init, subtract after ReLU).
fn shallow_schemes() -> Vec<(&'static str, Init, f32)> {
    vec![
        ("standard normal", Init::StandardNormal, 0.0),
        ("simplified kaiming", Init::SimplifiedKaiming, 0.0),
        ("kaiming (relu)", Init::KAIMING_RELU, 0.0),
        ("kaiming + relu-0.5", Init::KAIMING_RELU, 0.5),
        ("pytorch default", Init::PytorchLinear, 0.0),
    ]
}

fn mean_std(values: impl Iterator<Item = f32>) -> (f64, f64) {
    let (mut n, mut sum, mut sum_sq) = (0.0f64, 0.0f64, 0.0f64);
    for v in values {
        let v = v as f64;
        n += 1.0;
        sum += v;
        sum_sq += v * v;
    }
    let mean = sum / n;
    let var = (sum_sq - n * mean * mean) / (n - 1.0);
    // Rounding can make a tiny variance negative; NaN (from inf) must stay NaN.
    (mean, if var < 0.0 { 0.0 } else { var.sqrt() })
}

/// Average and spread (std across draws) of a statistic.
fn summarize(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

pub fn run(args: InitStatsArgs) -> Result<()> {
    anyhow::ensure!(
        args.draws >= 1 && args.depth >= 1 && args.width >= 1 && args.hidden >= 1,
        "--draws, --depth, --width and --hidden must be at least 1"
    );
    let splits = crate::data::load_splits("mnist", args.data_dir.as_deref(), SplitScheme::Fastai, !args.json)?;
    let valid = splits.valid.as_ref().expect("fastai split has a validation set");
    let lut = splits.normalization.lookup_table();
    let x = Array2::from_shape_fn((valid.len(), valid.features()), |(i, j)| {
        lut[valid.image(i)[j] as usize]
    });

    // Experiment 1: one layer of `hidden` units on the normalized validation set.
    let mut shallow = Vec::new();
    for (name, init, subtract) in shallow_schemes() {
        let stats: Vec<[f64; 4]> = (0..args.draws)
            .into_par_iter()
            .map(|draw| {
                let mut gen = rng(draw);
                let w = init.weight(args.hidden, x.ncols(), &mut gen);
                let b = init.bias(args.hidden, x.ncols(), &mut gen);
                let mut lin = backprop_matmul::matmul(x.view(), w.t());
                lin += &b;
                let (lm, ls) = mean_std(lin.iter().copied());
                let (rm, rs) = mean_std(lin.iter().map(|&v| v.max(0.0) - subtract));
                [lm, ls, rm, rs]
            })
            .collect();
        let column = |k: usize| summarize(&stats.iter().map(|s| s[k]).collect::<Vec<_>>());
        shallow.push((name, [column(0), column(1), column(2), column(3)]));
    }

    // Experiment 2: the deep stack x ← a·x (one matrix a reused for every layer, as in the
    // notebook), with and without ReLU, for a batch of 64 random inputs.
    // (name, scheme, factor applied to the drawn matrix)
    let deep_schemes: Vec<(&str, Init, f32)> = vec![
        ("standard normal", Init::StandardNormal, 1.0),
        ("normal x 0.01", Init::StandardNormal, 0.01),
        ("simplified kaiming", Init::SimplifiedKaiming, 1.0),
        ("kaiming", Init::KAIMING_RELU, 1.0),
        ("xavier", Init::XavierNormal { gain: 1.0 }, 1.0),
        ("pytorch default", Init::PytorchLinear, 1.0),
    ];
    let deep_draws = args.draws.min(10);
    let mut deep = Vec::new();
    for relu in [false, true] {
        for (name, init, factor) in &deep_schemes {
            let runs: Vec<DeepRun> = (0..deep_draws)
                .into_par_iter()
                .map(|draw| {
                    let mut gen = rng(1000 + draw);
                    let a = init.weight(args.width, args.width, &mut gen) * *factor;
                    let mut h = Init::StandardNormal.weight(64, args.width, &mut gen);
                    let mut stds = Vec::with_capacity(args.depth);
                    let mut event = None;
                    for layer in 1..=args.depth {
                        h = backprop_matmul::matmul(h.view(), a.t());
                        if relu {
                            h.mapv_inplace(|v| v.max(0.0));
                        }
                        let (_, std) = mean_std(h.iter().copied());
                        stds.push(std);
                        if event.is_none() {
                            if !std.is_finite() || std > 1e3 {
                                event = Some((layer, "explodes"));
                            } else if std < 1e-3 {
                                event = Some((layer, "vanishes"));
                            }
                        }
                        if !std.is_finite() {
                            break;
                        }
                    }
                    (stds, event)
                })
                .collect();
            deep.push((relu, *name, runs));
        }
    }

    if args.json {
        let shallow_json: Vec<_> = shallow
            .iter()
            .map(|(name, s)| {
                json!({"scheme": name, "lin_mean": s[0].0, "lin_mean_spread": s[0].1, "lin_std": s[1].0, "lin_std_spread": s[1].1,
                       "relu_mean": s[2].0, "relu_mean_spread": s[2].1, "relu_std": s[3].0, "relu_std_spread": s[3].1})
            })
            .collect();
        let deep_json: Vec<_> = deep
            .iter()
            .map(|(relu, name, runs)| {
                json!({"scheme": name, "relu": relu,
                       "events": runs.iter().map(|(_, e)| e.map(|(l, what)| json!({"layer": l, "what": what}))).collect::<Vec<_>>(),
                       "std_per_layer": runs[0].0})
            })
            .collect();
        outln!(
            "{}",
            json!({"draws": args.draws, "hidden": args.hidden, "shallow": shallow_json, "deep": {"depth": args.depth, "width": args.width, "draws": deep_draws, "runs": deep_json}})
        )?;
    } else {
        outln!(
            "lin(x) = x·Wᵀ + b on the normalized MNIST validation set ({} × {}), {} hidden units; mean ± spread over {} weight draws",
            x.nrows(),
            x.ncols(),
            args.hidden,
            args.draws
        )?;
        outln!(
            "{:<20} {:>17} {:>17} {:>17} {:>17}",
            "scheme",
            "lin mean",
            "lin std",
            "relu mean",
            "relu std"
        )?;
        for (name, s) in &shallow {
            let cell = |(m, d): (f64, f64)| format!("{m:>8.4} ± {d:<6.4}");
            outln!(
                "{name:<20} {:>17} {:>17} {:>17} {:>17}",
                cell(s[0]),
                cell(s[1]),
                cell(s[2]),
                cell(s[3])
            )?;
        }
        outln!()?;
        outln!("deep stack: x ← a·x for {} layers of {} units ({} draws of a; first layer where std > 1e3 or NaN, or std < 1e-3)", args.depth, args.width, deep_draws)?;
        outln!(
            "{:<20} {:<5} {:>14}  what happens (draws, layers)",
            "scheme",
            "relu",
            "std at last"
        )?;
        for (relu, name, runs) in &deep {
            let last: Vec<f64> = runs.iter().map(|(s, _)| *s.last().unwrap_or(&f64::NAN)).collect();
            let summary = describe_events(runs);
            let last_std = if last.iter().all(|v| v.is_finite()) {
                format!("{:.3e}", summarize(&last).0)
            } else {
                "inf/NaN".into()
            };
            outln!(
                "{name:<20} {:<5} {last_std:>14}  {summary}",
                if *relu { "yes" } else { "no" }
            )?;
        }
    }
    if let Some(path) = &args.plot {
        let curves: Vec<(bool, String, Vec<f64>)> = deep
            .iter()
            .map(|(relu, name, runs)| (*relu, name.to_string(), runs[0].0.clone()))
            .collect();
        let figure = deep_stack_figure(args.depth, args.width, &curves);
        let [png, svg] = write_picture(path, &figure)?;
        errln!("plot → {} and {}", png.display(), svg.display());
    }
    Ok(())
}

/// The deep stack's std after each layer, one panel without ReLU and one with it. `curves` holds
/// (relu, scheme, std per layer); values that overflowed to inf or NaN, or fell to 0, end a
/// line where they begin, as a log axis cannot show them.
pub fn deep_stack_figure(depth: usize, width: usize, curves: &[(bool, String, Vec<f64>)]) -> Figure {
    let panel = |relu: bool| {
        let title = if relu { "x ← relu(a·x)" } else { "x ← a·x" };
        let mut panel = Panel::new(title, "layer", "std of activations (log scale)")
            .log_y()
            .integer_x();
        // Schemes that give the same weights (simplified Kaiming and Xavier for a square `a`)
        // draw one line under both names; otherwise the second hides the first.
        let mut lines: Vec<(String, &Vec<f64>)> = Vec::new();
        for (_, name, stds) in curves.iter().filter(|c| c.0 == relu) {
            match lines.iter_mut().find(|(_, s)| *s == stds) {
                Some((names, _)) => *names = format!("{names} = {name}"),
                None => lines.push((name.clone(), stds)),
            }
        }
        for (name, stds) in lines {
            let points = stds
                .iter()
                .enumerate()
                .map(|(i, &s)| ((i + 1) as f64, s))
                .take_while(|(_, s)| s.is_finite() && *s > 0.0)
                .collect();
            panel = panel.series(Series::new(name, points));
        }
        panel
    };
    Figure {
        caption: Some(format!(
            "deep stack: std of activations per layer ({depth} layers of {width} units)"
        )),
        panels: vec![panel(false), panel(true)],
        columns: 2,
        size: (1400, 620),
    }
}
