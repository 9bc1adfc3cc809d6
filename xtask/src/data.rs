//! `cargo xtask data info | fetch | verify | show`.

use crate::output::{errln, outln};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use backprop_data::dataset::{self, FileStatus};
use backprop_data::download::{self, FetchEvent};
use backprop_data::split::{normalized_stats, pixel_stats};
use backprop_data::{DatasetSpec, SplitScheme, Splits, Subset};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::choices::{name, Dataset, Split, SubsetName};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Per split: count, image shape, label histogram, pixel mean/std before and after normalization.
    Info(DataArgs),
    /// Download the dataset's files that are missing (checksum-verified).
    Fetch(DataArgs),
    /// Check the checksums of the files present.
    Verify(DataArgs),
    /// Draw the first digits of a split with their labels to a PNG (and a few in the terminal).
    Show(ShowArgs),
}

#[derive(Args, Clone)]
pub struct DataArgs {
    /// The dataset.
    #[arg(long, value_enum, default_value_t = Dataset::Mnist)]
    pub dataset: Dataset,
    /// How the images are split.
    #[arg(long, value_enum, default_value_t = Split::Standard)]
    pub split: Split,
    /// With the standard split: how many of the last training images become the validation split.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub valid: usize,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Which part of the split to show.
    #[arg(long, value_enum, default_value_t = SubsetName::Train)]
    pub subset: SubsetName,
    /// How many digits (a grid of up to 10 per row).
    #[arg(long, default_value_t = 40)]
    pub count: usize,
    /// The PNG to write (and beside it the same picture as SVG).
    #[arg(long, default_value = "digits.png")]
    pub out: PathBuf,
}

pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Info(args) => info(&args),
        DataCommand::Fetch(args) => fetch(&args).map(|_| ()),
        DataCommand::Verify(args) => verify(&args),
        DataCommand::Show(args) => show(&args),
    }
}

pub fn parse_split(name: &str, valid: usize) -> Result<SplitScheme> {
    match name {
        "standard" => Ok(SplitScheme::Standard { valid }),
        "fastai" => Ok(SplitScheme::Fastai),
        other => anyhow::bail!("unknown split `{other}`: expected `standard` or `fastai`"),
    }
}

/// Downloads what is missing, with a progress bar per file. Returns the data directory.
pub fn fetch(args: &DataArgs) -> Result<PathBuf> {
    let spec = DatasetSpec::by_name(&name(args.dataset))?;
    let dir = crate::data_dir(args.data_dir.as_deref());
    fetch_spec(&spec, &dir, !args.json)?;
    Ok(dir)
}

fn fetch_spec(spec: &DatasetSpec, dir: &Path, verbose: bool) -> Result<()> {
    let mut bar: Option<ProgressBar> = None;
    download::fetch(spec, dir, &mut |event| match event {
        FetchEvent::Present { path, .. } => {
            if verbose {
                errln!("present   {}", path.display());
            }
        }
        FetchEvent::Start { url, total, .. } => {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_message(url);
            bar = Some(b);
        }
        FetchEvent::Progress { bytes } => {
            if let Some(b) = &bar {
                b.set_position(bytes);
            }
        }
        FetchEvent::Failed { url, reason } => {
            if let Some(b) = bar.take() {
                b.abandon();
            }
            errln!("failed    {url}: {reason}");
        }
        FetchEvent::Done { path, .. } => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            errln!("verified  {}", path.display());
        }
    })
    .with_context(|| format!("fetching {} into {}", spec.name, spec.dir(dir).display()))?;
    Ok(())
}

/// Loads a dataset (downloading what is missing) and splits it.
pub fn load_splits(dataset: &str, data_dir: Option<&Path>, scheme: SplitScheme, verbose: bool) -> Result<Splits> {
    let spec = DatasetSpec::by_name(dataset)?;
    let dir = crate::data_dir(data_dir);
    let missing = spec.files.iter().any(|f| dataset::locate(&spec.dir(&dir), f).is_none());
    if missing {
        fetch_spec(&spec, &dir, verbose)?;
    }
    let raw = dataset::load(&spec, &dir)
        .with_context(|| format!("loading {} from {}", spec.name, spec.dir(&dir).display()))?;
    Ok(Splits::new(&raw, scheme)?)
}

fn info(args: &DataArgs) -> Result<()> {
    let splits = load_splits(
        &name(args.dataset),
        args.data_dir.as_deref(),
        parse_split(&name(args.split), args.valid)?,
        !args.json,
    )?;
    let norm = splits.normalization;
    let describe = |s: &Subset| {
        let (mean, std) = pixel_stats(&s.pixels, norm.scale);
        let (norm_mean, norm_std) = normalized_stats(&s.pixels, &norm);
        json!({
            "n": s.len(), "rows": s.rows, "cols": s.cols,
            "mean": mean, "std": std, "norm_mean": norm_mean, "norm_std": norm_std,
            "label_counts": s.label_counts(),
        })
    };
    let mut per_split = serde_json::Map::new();
    for s in splits.subsets() {
        per_split.insert(s.name.to_string(), describe(s));
    }
    if args.json {
        outln!(
            "{}",
            json!({"dataset": splits.dataset, "split": splits.scheme.name(), "splits": per_split})
        )?;
        return Ok(());
    }
    outln!(
        "{} ({} split): pixels / {}, normalized with the training split's mean {:.6} and std {:.6}",
        splits.dataset,
        splits.scheme.name(),
        norm.scale,
        norm.mean,
        norm.std
    )?;
    outln!(
        "{:<6} {:>6} {:>6} {:>9} {:>9} {:>10} {:>9}  labels 0..9",
        "split",
        "n",
        "shape",
        "mean",
        "std",
        "norm mean",
        "norm std"
    )?;
    for s in splits.subsets() {
        let d = &per_split[s.name];
        outln!(
            "{:<6} {:>6} {:>6} {:>9.6} {:>9.6} {:>10.6} {:>9.6}  {:?}",
            s.name,
            s.len(),
            format!("{}x{}", s.rows, s.cols),
            d["mean"].as_f64().unwrap_or_default(),
            d["std"].as_f64().unwrap_or_default(),
            d["norm_mean"].as_f64().unwrap_or_default(),
            d["norm_std"].as_f64().unwrap_or_default(),
            s.label_counts()
        )?;
    }
    Ok(())
}

fn verify(args: &DataArgs) -> Result<()> {
    let spec = DatasetSpec::by_name(&name(args.dataset))?;
    let dir = crate::data_dir(args.data_dir.as_deref());
    let mut bad = 0;
    for (name, status) in dataset::verify(&spec, &dir)? {
        match status {
            FileStatus::Verified(p) => outln!("ok        {} (sha256 and md5 match)", p.display())?,
            FileStatus::Decompressed(p) => {
                outln!("unchecked {} (decompressed copy: no published checksum)", p.display())?
            }
            FileStatus::Missing(p) => {
                bad += 1;
                outln!("missing   {} ({name})", p.display())?
            }
            FileStatus::Mismatch(e) => {
                bad += 1;
                outln!("MISMATCH  {e}")?
            }
        }
    }
    anyhow::ensure!(
        bad == 0,
        "{bad} file(s) of {} missing or corrupt in {}",
        spec.name,
        spec.dir(&dir).display()
    );
    Ok(())
}

fn show(args: &ShowArgs) -> Result<()> {
    let splits = load_splits(
        &name(args.data.dataset),
        args.data.data_dir.as_deref(),
        parse_split(&name(args.data.split), args.data.valid)?,
        true,
    )?;
    let subset = splits
        .subsets()
        .find(|s| s.name == name(args.subset))
        .with_context(|| format!("this split has no `{}` subset", name(args.subset)))?;
    let count = args.count.min(subset.len()).max(1);
    // A few digits as shading in the terminal.
    let shades = [' ', '.', ':', '-', '=', '+', '*', '#', '%', '@'];
    for i in 0..count.min(3) {
        outln!("label {}:", subset.labels[i])?;
        for r in (0..subset.rows).step_by(2) {
            let line: String = (0..subset.cols)
                .map(|c| shades[subset.image(i)[r * subset.cols + c] as usize * (shades.len() - 1) / 255])
                .collect();
            outln!("  {line}")?;
        }
    }
    let grid = crate::plot::DigitGrid {
        title: format!(
            "the first {count} {} digits of {} ({} split), with labels",
            subset.name,
            splits.dataset,
            splits.scheme.name()
        ),
        rows: subset.rows,
        cols: subset.cols,
        images: (0..count)
            .map(|i| (subset.labels[i], subset.image(i).to_vec()))
            .collect(),
    };
    let [png, svg] = crate::plot::write_picture(&args.out, &grid)?;
    outln!(
        "{} {} digits of {} {} with labels → {} and {}",
        count,
        subset.name,
        splits.dataset,
        splits.scheme.name(),
        png.display(),
        svg.display()
    )?;
    Ok(())
}
