//! Running the anchors' Python programs, which live in `scripts/` (readable and runnable by
//! hand; each says how in its docstring).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

/// `scripts/<name>` in the workspace.
pub fn script(name: &str) -> PathBuf {
    crate::workspace_root().join("scripts").join(name)
}

/// `python scripts/<name> args...`, ready to run: with OpenBLAS left to pick its own kernels
/// (an inherited `OPENBLAS_CORETYPE` would pin them).
pub fn command(python: &str, name: &str) -> Result<Command> {
    let path = script(name);
    anyhow::ensure!(path.is_file(), "{} is missing", path.display());
    let mut cmd = Command::new(python);
    cmd.arg(path).env_remove("OPENBLAS_CORETYPE");
    Ok(cmd)
}

/// Runs `python scripts/<name> args...` with `env` and parses each stdout line that is a JSON
/// object.
pub fn json_lines(python: &str, name: &str, args: &[String], env: &[(&str, &str)]) -> Result<Vec<serde_json::Value>> {
    let mut cmd = command(python, name)?;
    cmd.args(args);
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
