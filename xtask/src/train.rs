//! `cargo xtask train`: the main job.

use crate::output::{errln, out, outln};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use backprop_data::Normalization;
use backprop_init::{rng, Init};
use backprop_model::{mlp, Sequential};
use backprop_train::checkpoint::{self, write_atomic, CONFIG_FILE, CURVES_FILE, METRICS_FILE, MODEL_FILE};
use backprop_train::{
    evaluate, fit, BatchInfo, Callbacks, EpochReport, FitConfig, Flow, Schedule, Sgd, Task, TrainError, TrainState,
};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::choices::{name, Dataset, InitScheme, LossName, ScheduleName, Split};
use crate::plot::{write_picture, Figure, Panel, Series};

/// Defaults: chosen so that the default run reaches ≥ 97.5% test accuracy in a few epochs.
const DEFAULT_EPOCHS: usize = 6;
const DEFAULT_BATCH: usize = 64;
const DEFAULT_LR: f32 = 0.05;
const DEFAULT_MOMENTUM: f32 = 0.9;
const DEFAULT_SCHEDULE: ScheduleName = ScheduleName::Cosine;

// The flags are `Option`s so that a resumed run can tell which were given (they may not
// change on resume); so their defaults are written into the help text, and the test
// `help_states_the_defaults` holds that text to the constants above.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The dataset [default: mnist].
    #[arg(long, value_enum)]
    dataset: Option<Dataset>,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Layer sizes, e.g. 784-256-256-10 [default: 784-50-10; 784-50-1 with --loss mse].
    #[arg(long, value_name = "SIZES")]
    arch: Option<String>,
    /// The loss [default: ce].
    #[arg(long, value_enum)]
    loss: Option<LossName>,
    /// How the weights are drawn [default: kaiming].
    #[arg(long, value_enum)]
    init: Option<InitScheme>,
    /// Total epochs of the run (with --resume: continue up to this many) [default: 6].
    #[arg(long)]
    epochs: Option<usize>,
    /// Samples per batch [default: 64].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Peak learning rate [default: 0.05].
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum, in [0, 1) [default: 0.9].
    #[arg(long)]
    momentum: Option<f32>,
    /// L2 weight decay, as torch.optim.SGD's weight_decay [default: 0].
    #[arg(long)]
    weight_decay: Option<f32>,
    /// The learning rate over the run [default: cosine].
    #[arg(long, value_enum)]
    schedule: Option<ScheduleName>,
    /// The seed of the weights and of the batch order [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Threads for the matrix products; results do not depend on it [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// How the images are split [default: standard].
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// With the standard split: the last N training images become a validation split
    /// [default: 0].
    #[arg(long, value_name = "N")]
    valid: Option<usize>,
    /// The run folder [default: <workspace>/runs/<dataset>-<UTC time>].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint.
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// Stop after this many epochs in total, as if interrupted (continue later with --resume).
    #[arg(long, value_name = "K")]
    stop_after: Option<usize>,
    /// Print a JSON summary as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// Everything a run needs to be repeated or resumed; saved as `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunConfig {
    pub dataset: String,
    pub split: String,
    pub valid: usize,
    pub arch: Vec<usize>,
    pub init: String,
    pub fit: FitConfig,
    /// How inputs were normalized: `x = (pixel / scale − mean) / std`.
    pub normalization: NormalizationConfig,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct NormalizationConfig {
    pub scale: f64,
    pub mean: f64,
    pub std: f64,
}

impl From<Normalization> for NormalizationConfig {
    fn from(n: Normalization) -> Self {
        NormalizationConfig {
            scale: n.scale,
            mean: n.mean,
            std: n.std,
        }
    }
}

pub fn parse_arch(text: &str) -> Result<Vec<usize>> {
    let sizes: Vec<usize> = text
        .split('-')
        .map(|s| s.trim().parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .with_context(|| format!("--arch `{text}`: expected positive layer sizes joined by `-`, e.g. 784-50-10"))?;
    ensure!(
        sizes.len() >= 2,
        "--arch `{text}`: needs at least an input and an output size"
    );
    Ok(sizes)
}

fn parse_task(loss: &str) -> Result<Task> {
    match loss {
        "ce" | "cross-entropy" => Ok(Task::Classification),
        "mse" => Ok(Task::Regression),
        other => bail!("--loss `{other}`: expected `ce` or `mse`"),
    }
}

/// The run's configuration from flags (a new run) or from the run folder (a resumed one).
fn configure(args: &TrainArgs) -> Result<(RunConfig, PathBuf, bool, checkpoint::RunLock)> {
    if let Some(dir) = &args.resume {
        let given: Vec<&str> = [
            ("--dataset", args.dataset.is_some()),
            ("--arch", args.arch.is_some()),
            ("--loss", args.loss.is_some()),
            ("--init", args.init.is_some()),
            ("--batch-size", args.batch_size.is_some()),
            ("--lr", args.lr.is_some()),
            ("--momentum", args.momentum.is_some()),
            ("--weight-decay", args.weight_decay.is_some()),
            ("--schedule", args.schedule.is_some()),
            ("--seed", args.seed.is_some()),
            ("--split", args.split.is_some()),
            ("--valid", args.valid.is_some()),
            ("--out", args.out.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, set)| set.then_some(flag))
        .collect();
        ensure!(
            given.is_empty(),
            "{} cannot be changed when resuming: a resumed run continues with the settings in {}",
            given.join(", "),
            dir.join("config.json").display()
        );
        // The lock first: what is read below cannot change under this run.
        let lock = checkpoint::lock(dir)?;
        let path = dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: RunConfig =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if let Some(epochs) = args.epochs {
            config.fit.epochs = epochs;
        }
        // A hand-edited or damaged config.json is refused field by field, naming the file
        // (`--epochs`, the one setting given on resume, is named as the flag).
        let origin = Origin::File(&path);
        if args.epochs.is_some() {
            ensure!(config.fit.epochs > 0, "--epochs must be at least 1");
        }
        validate(&config, &origin)?;
        check_sizes(&config.arch, config.fit.batch_size, &origin)?;
        return Ok((config, dir.clone(), true, lock));
    }
    let task = parse_task(&name(args.loss.unwrap_or(LossName::Ce)))?;
    let default_arch = match task {
        Task::Classification => "784-50-10",
        Task::Regression => "784-50-1",
    };
    let arch = parse_arch(args.arch.as_deref().unwrap_or(default_arch))?;
    let init = name(args.init.unwrap_or(InitScheme::Kaiming));
    let schedule_name = &name(args.schedule.unwrap_or(DEFAULT_SCHEDULE));
    let schedule = Schedule::parse(schedule_name)
        .with_context(|| format!("--schedule `{schedule_name}`: expected constant, linear, cosine or one-cycle"))?;
    let fit = FitConfig {
        epochs: args.epochs.unwrap_or(DEFAULT_EPOCHS),
        batch_size: args.batch_size.unwrap_or(DEFAULT_BATCH),
        lr: args.lr.unwrap_or(DEFAULT_LR),
        schedule,
        momentum: args.momentum.unwrap_or(DEFAULT_MOMENTUM),
        weight_decay: args.weight_decay.unwrap_or(0.0),
        seed: args.seed.unwrap_or(0),
        task,
    };
    let dataset = name(args.dataset.unwrap_or(Dataset::Mnist));
    let config = RunConfig {
        dataset,
        split: name(args.split.unwrap_or(Split::Standard)),
        valid: args.valid.unwrap_or(0),
        arch,
        init,
        fit,
        normalization: NormalizationConfig {
            scale: 0.0,
            mean: 0.0,
            std: 0.0,
        },
    };
    validate(&config, &Origin::Flags)?;
    check_sizes(&config.arch, config.fit.batch_size, &Origin::Flags)?;
    let out = match &args.out {
        Some(out) => out.clone(),
        None => crate::workspace_root()
            .join("runs")
            .join(format!("{}-{}", config.dataset, timestamp())),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let lock = checkpoint::lock(&out)?;
    // Any part of a run, not only its model: a folder whose model.safetensors was lost (a
    // write cut off, a full disk) still holds a resumable training state.
    let parts = checkpoint::run_parts(&out);
    if !parts.is_empty() {
        bail!(
            "{} already holds a run ({}): continue it with --resume {}, or choose another --out",
            out.display(),
            parts.join(", "),
            out.display()
        );
    }
    Ok((config, out, false, lock))
}

/// Where a run's settings came from, so that a message names what to fix: the flags of a new
/// run, or the `config.json` of a resumed one.
enum Origin<'a> {
    Flags,
    File(&'a Path),
}

impl Origin<'_> {
    /// `--lr`, or `runs/x/config.json: field `fit.lr``.
    fn name(&self, flag: &str, field: &str) -> String {
        match self {
            Origin::Flags => flag.to_string(),
            Origin::File(path) => format!("{}: field `{field}`", path.display()),
        }
    }
}

/// Every setting in its range, before anything is allocated or written.
fn validate(config: &RunConfig, origin: &Origin) -> Result<()> {
    let at = |flag: &str, field: &str| origin.name(flag, field);
    let arch_text = config.arch.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-");
    ensure!(
        config.arch.len() >= 2,
        "{} `{arch_text}`: needs at least an input and an output size, e.g. 784-50-10",
        at("--arch", "arch")
    );
    ensure!(
        config.arch.iter().all(|&n| n > 0),
        "{} `{arch_text}`: every layer size must be positive",
        at("--arch", "arch")
    );
    let task = config.fit.task;
    let outputs = task.outputs(10);
    let last = config.arch[config.arch.len() - 1];
    ensure!(
        last == outputs,
        "{} {arch_text}: {} {} needs {outputs} output(s), not {last}",
        at("--arch", "arch"),
        at("--loss", "fit.task"),
        task.loss_name()
    );
    Init::parse(&config.init).with_context(|| at("--init", "init"))?;
    backprop_data::DatasetSpec::by_name(&config.dataset).with_context(|| at("--dataset", "dataset"))?;
    crate::data::parse_split(&config.split, config.valid).with_context(|| at("--split", "split"))?;
    let fit = &config.fit;
    ensure!(fit.epochs > 0, "{} must be at least 1", at("--epochs", "fit.epochs"));
    ensure!(
        fit.batch_size > 0,
        "{} must be at least 1",
        at("--batch-size", "fit.batch_size")
    );
    let number = |value: f32, flag: &str, field: &str, range: &str, ok: bool| -> Result<()> {
        ensure!(!value.is_nan(), "{} is not a number", at(flag, field));
        ensure!(ok, "{} must be {range} (got {value})", at(flag, field));
        Ok(())
    };
    number(
        fit.lr,
        "--lr",
        "fit.lr",
        "a positive number",
        fit.lr.is_finite() && fit.lr > 0.0,
    )?;
    number(
        fit.momentum,
        "--momentum",
        "fit.momentum",
        "in [0, 1)",
        (0.0..1.0).contains(&fit.momentum),
    )?;
    number(
        fit.weight_decay,
        "--weight-decay",
        "fit.weight_decay",
        "a finite number, not negative",
        fit.weight_decay.is_finite() && fit.weight_decay >= 0.0,
    )?;
    Ok(())
}

/// Rows of the evaluation batches (test and validation).
const EVAL_BATCH: usize = 1000;

/// Refuses a network whose parameters or activations would not fit in memory, with the
/// figures and a suggestion, before anything is allocated (an allocation that fails aborts
/// the process).
fn check_sizes(arch: &[usize], batch_size: usize, origin: &Origin) -> Result<()> {
    let at = origin.name("--arch", "arch");
    let arch_text = arch.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-");
    let too_big = || anyhow::anyhow!("{at} {arch_text}: the number of parameters does not fit in a usize");
    let mut parameters = 0usize;
    for pair in arch.windows(2) {
        let layer = pair[0]
            .checked_mul(pair[1])
            .and_then(|w| w.checked_add(pair[1]))
            .ok_or_else(too_big)?;
        parameters = parameters.checked_add(layer).ok_or_else(too_big)?;
    }
    let width = arch
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n))
        .ok_or_else(too_big)?;
    let activations = width.checked_mul(batch_size.max(EVAL_BATCH)).ok_or_else(|| {
        anyhow::anyhow!("{at} {arch_text} with batches of {batch_size}: the activations do not fit in a usize")
    })?;
    // Each parameter lives as weight, gradient and momentum, and is copied a few times into
    // a checkpoint's bytes; each activation as output, kept input and gradient.
    let bytes = (parameters as u128 * 8 + activations as u128 * 4) * 4;
    let Some(available) = available_memory() else {
        return Ok(());
    };
    ensure!(
        bytes <= available as u128,
        "{at} {arch_text}: {} parameters and {} activations per batch of {} need about {} of memory,          but {} is available; use fewer hidden units (e.g. 784-256-10) or a smaller --batch-size",
        backprop_model::group_thousands(parameters),
        backprop_model::group_thousands(activations),
        batch_size.max(EVAL_BATCH),
        gigabytes(bytes),
        gigabytes(available as u128)
    );
    Ok(())
}

/// `MemAvailable` of `/proc/meminfo`, in bytes (`None` where there is no such file).
fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

fn gigabytes(bytes: u128) -> String {
    format!("{:.1} GB", bytes as f64 / 1e9)
}

/// `YYYYmmdd-HHMMSS` in UTC.
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!(
        "{year:04}{month:02}{day:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Ctrl-C while the epochs run: the loop stops after its current batch, leaving the run folder
/// as the last whole epoch wrote it (a checkpoint is never cut off mid-write), and the command
/// says how to resume. Ctrl-C at any other time, or a second one, exits at once.
static TRAINING: AtomicBool = AtomicBool::new(false);
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

fn handle_ctrl_c() -> Result<()> {
    ctrlc::set_handler(|| {
        if TRAINING.load(Ordering::SeqCst) && !STOP_REQUESTED.swap(true, Ordering::SeqCst) {
            return;
        }
        std::process::exit(INTERRUPTED_EXIT_CODE);
    })
    .context("installing the Ctrl-C handler")
}

/// The shell's status for a program ended by SIGINT (128 + 2).
pub const INTERRUPTED_EXIT_CODE: i32 = 130;

/// A run ended by Ctrl-C; its message says what the run folder holds.
#[derive(Debug)]
pub struct Interrupted(String);

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Interrupted {}

/// Draws progress, prints epoch lines, and checkpoints after every epoch.
struct Reporter {
    dir: PathBuf,
    bar: Option<ProgressBar>,
    reports: Vec<EpochReport>,
    epochs: usize,
    stop_after: Option<usize>,
    valid_name: &'static str,
    /// The last batch run (where a Ctrl-C stopped the run).
    last_batch: Option<BatchInfo>,
    /// Printing an epoch's line failed (stdout closed or full): the run stopped after that
    /// epoch's checkpoint, and ends with this error.
    output_error: Option<anyhow::Error>,
    /// Every batch this process ran, for the per-batch loss and learning rate of the curves
    /// (a resumed run draws them from where it resumed).
    batches: Vec<BatchInfo>,
}

impl Reporter {
    fn print_epoch(&self, report: &EpochReport, state: &TrainState, valid: &str) -> Result<()> {
        outln!(
            "epoch {:>3}/{}  train loss {:.4}{valid}  {:.2}s  {:.0} samples/s",
            report.epoch,
            self.epochs,
            report.train_loss,
            report.seconds,
            report.samples as f64 / report.seconds.max(1e-9)
        )?;
        if self.stop_after.is_some_and(|k| state.epochs_done >= k) && state.epochs_done < self.epochs {
            outln!(
                "stopped after epoch {} of {}; continue with --resume {}",
                state.epochs_done,
                self.epochs,
                self.dir.display()
            )?;
        }
        Ok(())
    }
}

impl Callbacks for Reporter {
    fn on_batch(&mut self, info: &BatchInfo) -> Flow {
        self.last_batch = Some(*info);
        self.batches.push(*info);
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(info.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  {per_sec}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(format!("{}/{}", info.epoch, self.epochs));
            bar
        });
        bar.set_position(info.batch as u64);
        if info.batch.is_multiple_of(16) || info.batch == info.batches {
            bar.set_message(format!("loss {:.4}", info.loss));
        }
        if STOP_REQUESTED.load(Ordering::Relaxed) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn on_epoch(
        &mut self,
        report: &EpochReport,
        model: &Sequential<f32>,
        sgd: &Sgd,
        state: &TrainState,
    ) -> Result<Flow, TrainError> {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        checkpoint::save(&self.dir, model, sgd, state)?;
        self.reports.push(report.clone());
        write_atomic(
            &self.dir.join(METRICS_FILE),
            checkpoint::metrics_csv(&self.reports).as_bytes(),
        )?;
        let valid = report.valid.as_ref().map_or(String::new(), |v| {
            format!(
                "  {} loss {:.4}  {} accuracy {:.4}",
                self.valid_name, v.loss, self.valid_name, v.accuracy
            )
        });
        // The checkpoint is written: if stdout has gone away, the run stops here, whole.
        if let Err(err) = self.print_epoch(report, state, &valid) {
            self.output_error = Some(err);
            return Ok(Flow::Stop);
        }
        if self.stop_after.is_some_and(|k| state.epochs_done >= k) && state.epochs_done < self.epochs {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }
}

pub fn run(args: TrainArgs) -> Result<()> {
    let wall = Instant::now();
    // Flags first: nothing is written before they are all checked.
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    ensure!(threads >= 1, "--threads must be at least 1");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads > cores {
        errln!(
            "warning: --threads {threads} is more than the {cores} cores of this machine: the extra \
             threads only wait for a core (results are the same for any number of threads)"
        );
    }
    ensure!(
        args.stop_after != Some(0),
        "--stop-after 0 would stop before the first epoch, with nothing to resume from: give K ≥ 1"
    );
    // `_lock` is held to the end of the run: one writer per run folder.
    let (mut config, dir, resuming, _lock) = configure(&args)?;
    let config_path = dir.join(CONFIG_FILE);
    let origin = if resuming {
        Origin::File(&config_path)
    } else {
        Origin::Flags
    };
    let scheme = crate::data::parse_split(&config.split, config.valid)?;
    let splits = crate::data::load_splits(&config.dataset, args.data_dir.as_deref(), scheme, !args.json)?;
    let features = splits.train.features();
    ensure!(
        config.arch[0] == features,
        "{} starts with {} inputs but {} images have {features} pixels",
        origin.name("--arch", "arch"),
        config.arch[0],
        config.dataset
    );
    // The step counter and the schedule count epochs × batches: refuse what would overflow.
    let batches = splits.train.len().div_ceil(config.fit.batch_size);
    ensure!(
        config
            .fit
            .epochs
            .checked_mul(batches)
            .is_some_and(|steps| u64::try_from(steps).is_ok()),
        "{} {}: {} epochs of {batches} batches are more steps than can be counted",
        origin.name("--epochs", "fit.epochs"),
        config.fit.epochs,
        config.fit.epochs
    );
    config.normalization = splits.normalization.into();

    let (mut model, mut sgd, mut state) = if resuming {
        ensure!(
            dir.join(checkpoint::STATE_FILE).exists(),
            "{} has no checkpoint to resume from (its run stopped before the first epoch ended?); \
             start the run again with --out",
            dir.display()
        );
        let saved = checkpoint::load(&dir).with_context(|| format!("resuming from {}", dir.display()))?;
        checkpoint::check_resume(&dir, &saved, &config.arch, config.fit.momentum)
            .with_context(|| format!("resuming from {}", dir.display()))?;
        let checkpoint::Saved { model, velocity, state } = saved;
        ensure!(
            state.step == state.epochs_done as u64 * batches as u64,
            "resuming from {}: {} says {} epochs and {} steps were done, but an epoch of {} \
             has {batches} batches",
            dir.display(),
            dir.join(checkpoint::STATE_FILE).display(),
            state.epochs_done,
            state.step,
            config_path.display()
        );
        let mut sgd = Sgd::new(config.fit.momentum, config.fit.weight_decay);
        sgd.load_state(velocity);
        ensure!(
            state.epochs_done < config.fit.epochs,
            "{} has already run {} epochs; pass --epochs N with N > {} to continue",
            dir.display(),
            state.epochs_done,
            state.epochs_done
        );
        (model, sgd, state)
    } else {
        let init = Init::parse(&config.init)?;
        let model = mlp(&config.arch, init, &mut rng(config.fit.seed));
        (
            model,
            Sgd::new(config.fit.momentum, config.fit.weight_decay),
            TrainState::default(),
        )
    };
    write_atomic(&config_path, serde_json::to_string_pretty(&config)?.as_bytes())?;

    if !args.json {
        outln!(
            "{} ({} split: {} train{}), {} threads, run folder {}",
            config.dataset,
            config.split,
            splits.train.len(),
            splits
                .valid
                .as_ref()
                .map_or(String::new(), |v| format!(", {} valid", v.len())),
            threads,
            dir.display()
        )?;
        out!("{}", model.summary(features)?)?;
    }
    let (valid_subset, valid_name) = match &splits.valid {
        Some(v) => (v, "valid"),
        None => (&splits.test, "test"),
    };
    let mut reporter = Reporter {
        dir: dir.clone(),
        bar: None,
        reports: if resuming {
            checkpoint::read_metrics_csv(&dir.join(METRICS_FILE))
                .into_iter()
                .take(state.epochs_done)
                .collect()
        } else {
            Vec::new()
        },
        epochs: config.fit.epochs,
        stop_after: args.stop_after,
        valid_name,
        last_batch: None,
        output_error: None,
        batches: Vec::new(),
    };
    handle_ctrl_c()?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build()?;
    let train_started = Instant::now();
    // The whole loop runs inside the pool: matrix products reach the other workers cheaply.
    TRAINING.store(true, Ordering::SeqCst);
    let result = pool.install(|| {
        fit(
            &mut model,
            &mut sgd,
            &mut state,
            &splits.train,
            Some(valid_subset),
            &splits.normalization,
            &config.fit,
            &mut reporter,
        )
    });
    TRAINING.store(false, Ordering::SeqCst);
    if let Some(bar) = reporter.bar.take() {
        bar.abandon();
    }
    let this_run = result.with_context(|| format!("training {} (checkpoints in {})", config.dataset, dir.display()))?;
    if let Some(err) = reporter.output_error.take() {
        // Stdout went away after an epoch's checkpoint: the folder is whole, and resumable.
        let _ = draw_curves(&dir, &reporter, valid_name);
        return Err(err);
    }
    // (A Ctrl-C after the last batch, while the last checkpoint was written, lets the run end.)
    if STOP_REQUESTED.load(Ordering::SeqCst) && state.epochs_done < config.fit.epochs {
        return Err(interrupted(&reporter, &state, &dir, valid_name).into());
    }
    let train_seconds = train_started.elapsed().as_secs_f64();
    let test = pool.install(|| {
        evaluate(
            &mut model,
            &splits.test,
            &splits.normalization,
            config.fit.task,
            EVAL_BATCH,
        )
    })?;
    draw_curves(&dir, &reporter, valid_name)?;

    // Speed is that of the epochs run by this invocation.
    let epoch_seconds: Vec<f64> = this_run.iter().map(|r| r.seconds).collect();
    let samples: usize = this_run.iter().map(|r| r.samples).sum();
    let checkpoint_path = dir.join(MODEL_FILE);
    outln!(
        "test accuracy {:.4}  test loss {:.4}  ({} samples)  trained {:.2}s, {:.2}s wall",
        test.accuracy,
        test.loss,
        test.samples,
        train_seconds,
        wall.elapsed().as_secs_f64()
    )?;
    outln!(
        "model {}  metrics {}  curves {} (and .svg)",
        checkpoint_path.display(),
        dir.join(METRICS_FILE).display(),
        dir.join(CURVES_FILE).display()
    )?;
    if args.json {
        let summary = json!({
            "test_accuracy": test.accuracy,
            "test_loss": test.loss,
            "epochs": state.epochs_done,
            "epoch_seconds": epoch_seconds,
            "train_seconds": train_seconds,
            "samples_per_second": samples as f64 / epoch_seconds.iter().sum::<f64>().max(1e-9),
            "checkpoint": checkpoint_path,
        });
        outln!("{summary}")?;
    }
    Ok(())
}

/// After a Ctrl-C: the curves of the whole epochs, and what the run folder holds.
fn interrupted(reporter: &Reporter, state: &TrainState, dir: &Path, valid_name: &str) -> Interrupted {
    let place = reporter.last_batch.map_or(String::new(), |b| {
        format!(
            " in epoch {} of {} (batch {} of {})",
            b.epoch, reporter.epochs, b.batch, b.batches
        )
    });
    if state.epochs_done == 0 {
        return Interrupted(format!(
            "interrupted{place}, before the first epoch ended: there is no checkpoint to resume from"
        ));
    }
    let curves = match draw_curves(dir, reporter, valid_name) {
        Ok(()) => String::new(),
        Err(err) => format!(" ({CURVES_FILE} not drawn: {err:#})"),
    };
    Interrupted(format!(
        "interrupted{place}: {} holds the checkpoint of epoch {}{curves}; continue with\n  \
         cargo xtask train --resume {}",
        dir.display(),
        state.epochs_done,
        dir.display()
    ))
}

/// Draws the curves of the run folder `dir` into `curves.png` and `curves.svg`.
fn draw_curves(dir: &Path, reporter: &Reporter, valid_name: &str) -> Result<()> {
    let caption = format!(
        "training curves: {}",
        dir.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    );
    let figure = curves_figure(&caption, &reporter.reports, &reporter.batches, valid_name);
    write_picture(&dir.join(CURVES_FILE), &figure)?;
    Ok(())
}

/// fastai's smoothing of the per-batch loss (`AvgSmoothLoss`): an exponential moving average
/// with weight `beta` on the past, divided by `1 − betaⁱ` so that the first batches are not
/// pulled towards zero.
pub fn smoothed(values: &[f64], beta: f64) -> Vec<f64> {
    let mut average = 0.0;
    let mut weight = 1.0;
    values
        .iter()
        .map(|&v| {
            average = beta * average + (1.0 - beta) * v;
            weight *= beta;
            average / (1.0 - weight)
        })
        .collect()
}

/// The training curves: per-batch loss (raw and smoothed) and learning rate against the step,
/// per-epoch train and validation loss, and validation accuracy. Batches after the last whole
/// epoch (a run stopped by Ctrl-C) are left out, as that epoch's figures are.
pub fn curves_figure(caption: &str, reports: &[EpochReport], batches: &[BatchInfo], valid_name: &str) -> Figure {
    use plotters::chart::SeriesLabelPosition::{LowerRight, UpperRight};
    let last_epoch = reports.last().map_or(0, |r| r.epoch);
    let batches: Vec<&BatchInfo> = batches.iter().filter(|b| b.epoch <= last_epoch).collect();
    let step = |b: &BatchInfo| ((b.epoch - 1) * b.batches + b.batch) as f64;
    let losses: Vec<f64> = batches.iter().map(|b| b.loss as f64).collect();
    let smooth = smoothed(&losses, 0.98);
    let epoch = |r: &EpochReport| r.epoch as f64;
    let per_batch = Panel::new("loss per batch", "step", "loss (log scale)")
        .log_y()
        .series(Series::new("raw", batches.iter().map(|b| (step(b), b.loss as f64)).collect()).faint())
        .series(Series::new(
            "smoothed (EMA 0.98)",
            batches.iter().zip(&smooth).map(|(b, &s)| (step(b), s)).collect(),
        ));
    let per_epoch = Panel::new("loss per epoch", "epoch", "loss (log scale)")
        .log_y()
        .integer_x()
        .series(Series::new(
            "train (mean over the epoch)",
            reports.iter().map(|r| (epoch(r), r.train_loss)).collect(),
        ))
        .series(Series::new(
            format!("{valid_name} (end of epoch)"),
            reports
                .iter()
                .filter_map(|r| r.valid.as_ref().map(|v| (epoch(r), v.loss)))
                .collect(),
        ))
        .legend(UpperRight);
    let accuracy = Panel::new(format!("{valid_name} accuracy per epoch"), "epoch", "accuracy")
        .integer_x()
        .series(Series::new(
            format!("{valid_name} accuracy"),
            reports
                .iter()
                .filter_map(|r| r.valid.as_ref().map(|v| (epoch(r), v.accuracy)))
                .collect(),
        ))
        .legend(LowerRight);
    let lr = Panel::new("learning rate", "step", "learning rate").series(Series::new(
        "lr",
        batches.iter().map(|b| (step(b), b.lr as f64)).collect(),
    ));
    Figure {
        caption: Some(caption.to_string()),
        panels: vec![per_batch, per_epoch, accuracy, lr],
        columns: 2,
        size: (1200, 860),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// The flags are `Option`s, so clap cannot show their defaults: the help text states them,
    /// and must state the ones the code applies.
    #[test]
    fn help_states_the_defaults() {
        let mut cli = crate::Cli::command();
        let help = cli
            .find_subcommand_mut("train")
            .expect("train is a subcommand")
            .render_long_help()
            .to_string();
        for (flag, default) in [
            ("--epochs", DEFAULT_EPOCHS.to_string()),
            ("--batch-size", DEFAULT_BATCH.to_string()),
            ("--lr", DEFAULT_LR.to_string()),
            ("--momentum", DEFAULT_MOMENTUM.to_string()),
            ("--schedule", crate::choices::name(DEFAULT_SCHEDULE)),
        ] {
            let text = help.split(&format!("{flag} <")).nth(1).expect("the flag is listed");
            let text = text.split("\n      --").next().unwrap();
            assert!(text.contains(&format!("[default: {default}]")), "{flag}: {text}");
        }
    }
}
