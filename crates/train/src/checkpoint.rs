//! Run folders on disk: every file is written atomically (a temporary file in the same folder,
//! flushed, then renamed over the old one), so a crash or Ctrl-C mid-write leaves the previous
//! version whole.
//!
//! - `model.safetensors`: the model's tensors only, PyTorch's keys (loads strictly in PyTorch).
//! - `training_state.safetensors`: everything needed to resume in **one** file, so it can never
//!   be half of one epoch and half of another: the model (`model.0.weight`, ...), the momentum
//!   buffers (`velocity.0.weight`, ...), and in its metadata the epochs done and steps taken.
//! - `metrics.csv`: one row per epoch.
//! - `config.json` (written by the command line) and `curves.png`.
//! - `.backprop.lock`: held by the one process writing the folder ([`lock`]); it holds that
//!   process's id, and is not part of the run.
//!
//! Loading checks everything against everything: each momentum buffer against its
//! parameter's shape ([`load`]), and the checkpoint against the run's settings
//! ([`check_resume`]).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use backprop_model::checkpoint::{self, Tensors};
use backprop_model::Sequential;

use crate::error::TrainError;
use crate::fit::{EpochReport, TrainState};
use crate::optimizer::Sgd;

pub const MODEL_FILE: &str = "model.safetensors";
pub const STATE_FILE: &str = "training_state.safetensors";
pub const METRICS_FILE: &str = "metrics.csv";
pub const CONFIG_FILE: &str = "config.json";
pub const CURVES_FILE: &str = "curves.png";
pub const LOCK_FILE: &str = ".backprop.lock";

/// The files of a run: a folder holding any of them (or a temporary file of one) holds a run.
pub const RUN_FILES: [&str; 5] = [MODEL_FILE, STATE_FILE, METRICS_FILE, CONFIG_FILE, CURVES_FILE];

/// The parts of a run present in `dir`: its files, and temporary files left by a write that
/// was cut off (`.model.safetensors.<pid>.tmp`). Empty when `dir` does not exist.
pub fn run_parts(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut parts: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| {
            RUN_FILES.contains(&name.as_str())
                || RUN_FILES
                    .iter()
                    .any(|file| name.starts_with(&format!(".{file}.")) && name.ends_with(".tmp"))
        })
        .collect();
    parts.sort();
    parts
}

/// The exclusive lock on a run folder, held until dropped (or the process ends, however it
/// ends: the operating system releases it).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// Takes the exclusive lock on run folder `dir` (creating `dir/.backprop.lock`), or fails at
/// once with [`TrainError::Busy`] naming the process that holds it.
pub fn lock(dir: &Path) -> Result<RunLock, TrainError> {
    let path = dir.join(LOCK_FILE);
    // Not truncated on open: until the lock is ours, the file holds the holder's id.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| TrainError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut file, &mut text);
            return Err(TrainError::Busy {
                path: dir.to_path_buf(),
                holder: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(TrainError::io(&path, e)),
    }
    let write_pid = |file: &mut std::fs::File| -> std::io::Result<()> {
        file.set_len(0)?;
        std::io::Seek::rewind(file)?;
        write!(file, "{}", std::process::id())?;
        file.flush()
    };
    write_pid(&mut file).map_err(|e| TrainError::io(&path, e))?;
    Ok(RunLock { _file: file })
}

/// Writes `bytes` to `path` atomically: temporary file, fsync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&temp);
        return Err(TrainError::io(path, e));
    }
    Ok(())
}

/// Saves the model and the training state into `dir`.
pub fn save(dir: &Path, model: &Sequential<f32>, sgd: &Sgd, state: &TrainState) -> Result<(), TrainError> {
    let mut everything = Tensors::new();
    for (name, t) in checkpoint::state_dict(model) {
        everything.insert(format!("model.{name}"), t);
    }
    for (name, v) in sgd.state() {
        everything.insert(format!("velocity.{name}"), v.clone());
    }
    let metadata = HashMap::from([
        ("epochs_done".to_string(), state.epochs_done.to_string()),
        ("step".to_string(), state.step.to_string()),
        ("format".to_string(), "backprop-training-state-v1".to_string()),
    ]);
    let state_bytes = sorted_header(
        &checkpoint::tensors_to_bytes(&everything, Some(metadata))?,
        &dir.join(STATE_FILE),
    )?;
    write_atomic(&dir.join(STATE_FILE), &state_bytes)?;
    write_atomic(&dir.join(MODEL_FILE), &checkpoint::to_safetensors(model)?)
}

/// The same safetensors bytes with the JSON header's keys sorted (tensors and metadata), so
/// that identical runs write identical bytes: `safetensors::serialize` writes the metadata
/// in a `HashMap`'s order, which changes from one process to the next. The header is padded
/// with spaces to a multiple of 8 bytes, as safetensors pads it; tensor offsets are relative to
/// the data after it, so they stand.
fn sorted_header(bytes: &[u8], path: &Path) -> Result<Vec<u8>, TrainError> {
    let bad = |problem: &str| TrainError::Checkpoint {
        path: path.to_path_buf(),
        problem: format!("serializing: {problem}"),
    };
    let (len, rest) = bytes.split_at_checked(8).ok_or_else(|| bad("no header"))?;
    let len = u64::from_le_bytes(len.try_into().map_err(|_| bad("no header length"))?);
    let len = usize::try_from(len).map_err(|_| bad("header too long"))?;
    let (header, data) = rest.split_at_checked(len).ok_or_else(|| bad("header cut off"))?;
    // serde_json's `Map` is a BTreeMap (no `preserve_order`): keys come out sorted.
    let value: serde_json::Value = serde_json::from_slice(header).map_err(|e| bad(&e.to_string()))?;
    let mut header = serde_json::to_vec(&value).map_err(|e| bad(&e.to_string()))?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    Ok(out)
}

/// What [`load`] reads back.
pub struct Saved {
    /// The model, rebuilt as an MLP from its tensors.
    pub model: Sequential<f32>,
    /// Momentum buffers by parameter name (for [`Sgd::load_state`]).
    pub velocity: BTreeMap<String, ndarray::ArrayD<f32>>,
    pub state: TrainState,
}

/// Reads what [`save`] wrote.
pub fn load(dir: &Path) -> Result<Saved, TrainError> {
    let path = dir.join(STATE_FILE);
    let bytes = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
    let bad = |problem: String| TrainError::Checkpoint {
        path: path.clone(),
        problem,
    };
    let (tensors, metadata) = checkpoint::tensors_from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
    let number = |key: &str| -> Result<u64, TrainError> {
        metadata
            .get(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| bad(format!("metadata `{key}` is missing or not a number")))
    };
    let state = TrainState {
        epochs_done: number("epochs_done")? as usize,
        step: number("step")?,
    };
    let (mut model_tensors, mut velocity) = (Tensors::new(), BTreeMap::new());
    for (key, t) in tensors {
        if let Some(name) = key.strip_prefix("model.") {
            model_tensors.insert(name.to_string(), t);
        } else if let Some(name) = key.strip_prefix("velocity.") {
            velocity.insert(name.to_string(), t);
        } else {
            return Err(bad(format!("unexpected tensor `{key}`")));
        }
    }
    let model = checkpoint::mlp_from_tensors(&model_tensors).map_err(|e| bad(e.to_string()))?;
    let shapes: BTreeMap<String, Vec<usize>> = model.parameter_shapes().into_iter().collect();
    for (name, v) in &velocity {
        match shapes.get(name) {
            None => {
                return Err(bad(format!(
                    "momentum buffer `velocity.{name}` belongs to no parameter"
                )))
            }
            Some(shape) if shape.as_slice() != v.shape() => {
                return Err(bad(format!(
                    "momentum buffer `velocity.{name}` has shape {:?}, but parameter `{name}` has {shape:?}",
                    v.shape()
                )))
            }
            Some(_) => {}
        }
    }
    Ok(Saved { model, velocity, state })
}

/// The layer sizes of an MLP (`[784, 50, 10]`) from its Linear layers' weights.
pub fn arch_of(model: &Sequential<f32>) -> Vec<usize> {
    let mut arch = Vec::new();
    for (name, shape) in model.parameter_shapes() {
        if let (true, [out, input]) = (name.ends_with(".weight"), shape.as_slice()) {
            if arch.is_empty() {
                arch.push(*input);
            }
            arch.push(*out);
        }
    }
    arch
}

/// Checks a loaded checkpoint of `dir` against the settings it is resumed with: the network
/// against `arch`, and the momentum buffers against `momentum` (none without momentum; one
/// per parameter once a step has been taken with it).
pub fn check_resume(dir: &Path, saved: &Saved, arch: &[usize], momentum: f32) -> Result<(), TrainError> {
    let path = dir.join(STATE_FILE);
    let bad = |problem: String| TrainError::Checkpoint {
        path: path.clone(),
        problem,
    };
    let join = |sizes: &[usize]| sizes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("-");
    let held = arch_of(&saved.model);
    if held != arch {
        return Err(bad(format!(
            "holds a {} network, but {} says `arch` is {}",
            join(&held),
            dir.join(CONFIG_FILE).display(),
            join(arch)
        )));
    }
    if momentum == 0.0 {
        if let Some(name) = saved.velocity.keys().next() {
            return Err(bad(format!(
                "holds momentum buffer `velocity.{name}`, but {} says `fit.momentum` is 0",
                dir.join(CONFIG_FILE).display()
            )));
        }
    } else if saved.state.step > 0 {
        for (name, _) in saved.model.parameter_shapes() {
            if !saved.velocity.contains_key(&name) {
                return Err(bad(format!(
                    "momentum buffer `velocity.{name}` is missing (momentum {momentum}, {} steps taken): \
                     the checkpoint is incomplete",
                    saved.state.step
                )));
            }
        }
    }
    Ok(())
}

/// `metrics.csv` for the epochs so far.
pub fn metrics_csv(reports: &[EpochReport]) -> String {
    let mut csv = String::from("epoch,train_loss,valid_loss,valid_accuracy,seconds,samples\n");
    for r in reports {
        let (vl, va) = r.valid.as_ref().map_or((String::new(), String::new()), |v| {
            (format!("{:.6}", v.loss), format!("{:.6}", v.accuracy))
        });
        csv += &format!(
            "{},{:.6},{vl},{va},{:.4},{}\n",
            r.epoch, r.train_loss, r.seconds, r.samples
        );
    }
    csv
}

/// Reads back the epochs of a `metrics.csv` (for resuming), as far as they can be parsed.
pub fn read_metrics_csv(path: &Path) -> Vec<EpochReport> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let valid = match (f.get(2)?.parse().ok(), f.get(3)?.parse().ok()) {
                (Some(loss), Some(accuracy)) => Some(crate::metrics::Evaluation {
                    loss,
                    accuracy,
                    samples: 0,
                    confusion: Vec::new(),
                }),
                _ => None,
            };
            Some(EpochReport {
                epoch: f.first()?.parse().ok()?,
                train_loss: f.get(1)?.parse().ok()?,
                valid,
                seconds: f.get(4)?.parse().ok()?,
                samples: f.get(5)?.parse().ok()?,
            })
        })
        .collect()
}

/// The path of a file in a run folder.
pub fn run_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backprop_init::{rng, Init};

    /// Identical states give identical bytes: the metadata is sorted, not in a `HashMap`'s
    /// order (each `HashMap` has its own random order, so eight saves would almost surely
    /// differ before the fix).
    #[test]
    fn identical_states_give_identical_bytes() {
        let dir = std::env::temp_dir().join(format!("backprop-train-bytes-{}", std::process::id()));
        let model = backprop_model::mlp(&[4, 3, 2], Init::KAIMING_RELU, &mut rng(1));
        let state = TrainState {
            epochs_done: 2,
            step: 10,
        };
        let mut seen = Vec::new();
        for _ in 0..8 {
            save(&dir, &model, &Sgd::new(0.9, 0.0), &state).unwrap();
            seen.push(std::fs::read(dir.join(STATE_FILE)).unwrap());
        }
        let text = String::from_utf8_lossy(&seen[0]).into_owned();
        let at = |key: &str| text.find(key).unwrap();
        assert!(
            at("\"epochs_done\"") < at("\"format\"") && at("\"format\"") < at("\"step\""),
            "{text}"
        );
        assert!(seen.iter().all(|b| *b == seen[0]));
        // And they still load.
        let saved = load(&dir).unwrap();
        assert_eq!((saved.state.epochs_done, saved.state.step), (2, 10));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
