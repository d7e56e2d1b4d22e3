//! A user service's Python virtualenv, keyed by its requirements: `{dir}/venvs/{id}` is made
//! once per distinct requirements file (and source: index or wheelhouse), `{dir}/venv` points
//! at the one in use. A release that changes only code reuses the venv; a half-built venv
//! (pip failed, the host rebooted) has no completion mark and is built again.

use std::path::{Path, PathBuf};

use super::app_release::{name_of, swap_symlink};
use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

/// Written last into a venv whose pip install succeeded.
const COMPLETE: &str = ".mp-remote-complete";
/// The venv in use before the last switch: a rollback's.
pub const PREVIOUS: &str = "venv-previous";
/// pip's output, kept in the venv: what was installed and from where.
pub const PIP_LOG: &str = "pip.log";

pub struct Venv<'a> {
    pub service: &'a str,
    pub dir: &'a str,
    pub key: &'a str,
    pub requirements: Option<&'a str>,
    pub find_links: Option<&'a str>,
}

impl Venv<'_> {
    /// The pip command line, or None without requirements.
    fn pip(&self, target: &Path) -> Option<String> {
        let requirements = self.requirements?;
        let mut command = format!(
            "{} -m pip install --disable-pip-version-check --no-input -r {}",
            quote(&target.join("bin/python").to_string_lossy()),
            quote(requirements)
        );
        if let Some(links) = self.find_links {
            // An air-gapped host: only the pushed wheels, never the index.
            command.push_str(&format!(" --no-index --find-links {}", quote(links)));
        }
        Some(command)
    }
}

pub async fn apply(venv: &Venv<'_>, check_only: bool) -> Result<Outcome, StepError> {
    let dir = PathBuf::from(venv.dir);
    let id = &venv.key[..16.min(venv.key.len())];
    let target = dir.join("venvs").join(id);
    let link = dir.join("venv");
    let now = std::fs::read_link(&link).ok();
    let complete = target.join(COMPLETE).is_file();
    if complete && now.as_deref() == Some(target.as_path()) {
        return Ok(Outcome::unchanged(format!(
            "venv {id} is current (requirements unchanged)"
        )));
    }
    let change = if complete {
        format!("switch {} to venv {id}", link.display())
    } else {
        format!(
            "build venv {id}{}",
            match venv.pip(&target) {
                Some(pip) => format!(": {pip}"),
                None => " (no requirements)".into(),
            }
        )
    };
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    let mut message = change.clone();
    if !complete {
        let last = build(venv, &target).await?;
        if !last.is_empty() {
            message = format!("{message} ({last})");
        }
    }
    swap_symlink(&link, &target)
        .map_err(|e| StepError::new(format!("cannot switch {}: {e}", link.display())))?;
    let mut changes = vec![change];
    // What a rollback of this service switches back to.
    if let Some(old) = now.as_deref().filter(|old| *old != target) {
        swap_symlink(&dir.join(PREVIOUS), old)
            .map_err(|e| StepError::new(format!("cannot keep the previous venv: {e}")))?;
    }
    // Only the venv in use and the one before it (a rollback's) stay.
    if let Ok(entries) = std::fs::read_dir(dir.join("venvs")) {
        for path in entries.flatten().map(|e| e.path()) {
            if path != target
                && now.as_deref() != Some(path.as_path())
                && std::fs::remove_dir_all(&path).is_ok()
            {
                changes.push(format!("remove old venv {}", name_of(&path)));
            }
        }
    }
    Ok(Outcome::changed(message, changes))
}

/// `python3 -m venv`, then pip; returns pip's last line. On failure the error names the
/// service and carries pip's last lines.
async fn build(venv: &Venv<'_>, target: &Path) -> Result<String, StepError> {
    let _ = std::fs::remove_dir_all(target);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| StepError::new(format!("cannot create {}: {e}", parent.display())))?;
    }
    let made = sh(&format!(
        "python3 -m venv {}",
        quote(&target.to_string_lossy())
    ))
    .await
    .map_err(|e| StepError::new(format!("cannot run python3: {e}")))?;
    if !made.success() {
        return Err(StepError::new(format!(
            "service {}: python3 -m venv failed ({})",
            venv.service,
            exit(made.code)
        ))
        .hint(
            "install python3-venv on the host (the deploy's packages step does), then deploy again",
        )
        .with_output(&made.output));
    }
    let mut last = String::new();
    if let Some(pip) = venv.pip(target) {
        let run = sh(&format!("PIP_NO_CACHE_DIR=1 {pip}"))
            .await
            .map_err(|e| StepError::new(format!("cannot run pip: {e}")))?;
        let log = format!("$ {pip}\n{}", run.output);
        let _ = std::fs::write(target.join(PIP_LOG), &log);
        if !run.success() {
            return Err(StepError::new(format!(
                "service {}: pip install failed ({})",
                venv.service,
                exit(run.code)
            ))
            .hint(if venv.find_links.is_some() {
                "the wheelhouse lacks a wheel the requirements need (pip's last lines are below): pip download -r requirements.txt -d WHEELHOUSE on a machine with the index, for the host's Python"
            } else {
                "pip could not resolve or fetch the requirements (its last lines are below): fix requirements.txt, or the host's access to the package index, or push a wheelhouse"
            })
            .with_output(&log));
        }
        last = run
            .output
            .lines()
            .rev()
            .find(|l| {
                l.starts_with("Successfully installed") || l.starts_with("Requirement already")
            })
            .unwrap_or_default()
            .to_string();
    }
    std::fs::write(target.join(COMPLETE), "")
        .map_err(|e| StepError::new(format!("cannot finish {}: {e}", target.display())))?;
    Ok(last)
}

fn exit(code: Option<i32>) -> String {
    code.map_or("killed by a signal".into(), |c| format!("exit {c}"))
}
