//! `cargo xtask ci`: the checks of continuous integration, in order, stopping at the first that
//! fails. `.ci/run` prepares the machine (the datasets, the toolchain's components) and calls it.
//!
//! Each step is a child process: cargo's own subcommands (xtask is itself built by cargo, so
//! it cannot run them in-process), then smoke runs of the benchmarks by this same binary. A
//! step's output goes straight to the terminal, so that cargo test's summary lines reach
//! whatever reads CI's output.

use crate::output::{out, outln};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Who runs a step.
enum Program {
    /// The cargo that built this binary (`$CARGO`, else `cargo` on the PATH).
    Cargo,
    /// This binary: `cargo xtask ...` without cargo in between.
    Xtask,
}

/// What becomes of a step's standard output.
enum Output {
    /// Shown as it comes.
    Shown,
    /// Not shown (a smoke run's table; its errors still reach stderr).
    Hidden,
    /// Read, and the step fails unless some line passes the check (described for the error).
    Checked(&'static str, fn(&str) -> bool),
}

struct Step {
    name: &'static str,
    program: Program,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    output: Output,
}

/// The steps, in the order they run.
fn steps() -> Vec<Step> {
    use Output::{Checked, Hidden, Shown};
    use Program::{Cargo, Xtask};
    let step = |name, program, args, env, output| Step {
        name,
        program,
        args,
        env,
        output,
    };
    vec![
        step(
            "cargo fmt --check",
            Cargo,
            &["fmt", "--all", "--", "--check"],
            &[],
            Shown,
        ),
        step(
            "cargo clippy",
            Cargo,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--locked",
                "--",
                "-D",
                "warnings",
            ],
            &[],
            Shown,
        ),
        // Snapshots are checked, never written, in CI.
        step(
            "tests (the README's command: cargo test --workspace)",
            Cargo,
            &["test", "--workspace", "--locked"],
            &[("INSTA_UPDATE", "no")],
            Shown,
        ),
        step(
            "cargo doc (intra-doc links and markup checked)",
            Cargo,
            &["doc", "--workspace", "--no-deps", "--locked"],
            &[("RUSTDOCFLAGS", "-D warnings")],
            Shown,
        ),
        step(
            "smoke run: bench matmul (not a measurement)",
            Xtask,
            &["bench", "matmul", "--quick", "--python", "/nonexistent"],
            &[],
            Hidden,
        ),
        step(
            "smoke run: bench matmul --sweep",
            Xtask,
            &["bench", "matmul", "--sweep", "--quick"],
            &[],
            Hidden,
        ),
        step(
            "smoke run: bench matmul --arch, which prints an epoch's products",
            Xtask,
            &[
                "bench",
                "matmul",
                "--quick",
                "--arch",
                "784-50-10",
                "--batch-size",
                "64",
                "--python",
                "/nonexistent",
            ],
            &[],
            Checked("a line `784-50-10 ... best of all ...`", |line| {
                line.starts_with("784-50-10 ") && line.contains(" best of all")
            }),
        ),
        step(
            "smoke run: bench data",
            Xtask,
            &["bench", "data", "--quick"],
            &[],
            Hidden,
        ),
        step(
            "smoke run: bench train",
            Xtask,
            &["bench", "train", "--quick", "--python", "/nonexistent"],
            &[],
            Hidden,
        ),
    ]
}

pub fn run() -> Result<()> {
    let cargo = std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from);
    let xtask = std::env::current_exe().context("finding this program's path")?;
    let root = crate::workspace_root();
    let steps = steps();
    for (i, step) in steps.iter().enumerate() {
        let (program, shown) = match step.program {
            Program::Cargo => (&cargo, "cargo"),
            Program::Xtask => (&xtask, "cargo xtask"),
        };
        let env: String = step.env.iter().map(|(k, v)| format!("{k}={v:?} ")).collect();
        outln!("== [{}/{}] {}", i + 1, steps.len(), step.name)?;
        outln!("$ {env}{shown} {}", step.args.join(" "))?;
        let mut cmd = Command::new(program);
        cmd.args(step.args).envs(step.env.iter().copied()).current_dir(&root);
        let status = match step.output {
            Output::Shown => cmd.status(),
            Output::Hidden => cmd.stdout(Stdio::null()).status(),
            Output::Checked(expected, check) => {
                let out = cmd
                    .stderr(Stdio::inherit())
                    .output()
                    .with_context(|| format!("running {}", program.display()))?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                if out.status.success() && !stdout.lines().any(check) {
                    out!("{stdout}")?;
                    bail!("ci step `{}`: its output has no {expected}", step.name);
                }
                Ok(out.status)
            }
        }
        .with_context(|| format!("running {}", program.display()))?;
        if !status.success() {
            bail!("ci step `{}` failed ({status})", step.name);
        }
    }
    outln!("== ci: all {} steps passed", steps.len())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test command of the README is one of the steps, as written there.
    #[test]
    fn ci_runs_the_readme_test_command() {
        let readme = std::fs::read_to_string(crate::workspace_root().join("README.md")).unwrap();
        assert!(readme.contains("cargo test --workspace"));
        assert!(steps()
            .iter()
            .any(|s| matches!(s.program, Program::Cargo) && s.args.starts_with(&["test", "--workspace"])));
    }

    #[test]
    fn the_network_products_check_finds_the_epoch_line() {
        let check = steps()
            .into_iter()
            .find_map(|s| match s.output {
                Output::Checked(_, check) => Some(check),
                _ => None,
            })
            .expect("the --arch smoke run checks its output");
        assert!(check(
            "784-50-10            64        2  backprop 0.041  best of all 0.041"
        ));
        assert!(!check("matrix products of one epoch of 60,000 samples"));
    }
}
