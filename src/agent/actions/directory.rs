//! A directory with an owner and mode (data and state directories under /var/lib, never /tmp).

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

pub async fn apply(
    path: &str,
    owner: Option<&str>,
    mode: u32,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let q = quote(path);
    let current = crate::agent::owner::owner_and_mode(path)
        .map(|(owner, mode)| format!("{owner} {mode:o}"))
        .unwrap_or_default();
    let owner_wanted = owner.map(|o| {
        if o.contains(':') {
            o.to_string()
        } else {
            format!("{o}:{o}")
        }
    });
    let wanted_mode = format!("{mode:o}");
    let (have_owner, have_mode) = current.split_once(' ').unwrap_or(("", ""));
    let mut changes = Vec::new();
    if current.is_empty() {
        changes.push(format!("create {path}"));
    }
    if let Some(o) = &owner_wanted {
        if have_owner != o {
            changes.push(format!("owner {o}"));
        }
    }
    if have_mode != wanted_mode {
        changes.push(format!("mode {wanted_mode}"));
    }
    if changes.is_empty() {
        return Ok(Outcome::unchanged(format!("{path} in place")));
    }
    if check_only {
        return Ok(Outcome::changed(
            format!("{path}: {}", changes.join(", ")),
            changes,
        ));
    }
    let mut script = format!("mkdir -p {q} && chmod {wanted_mode} {q}");
    if let Some(o) = &owner_wanted {
        script.push_str(&format!(" && chown {} {q}", quote(o)));
    }
    let out = sh(&script)
        .await
        .map_err(|e| StepError::new(format!("cannot create {path}: {e}")))?;
    if !out.success() {
        return Err(StepError::new(format!("cannot create {path}")).with_output(&out.output));
    }
    Ok(Outcome::changed(
        format!("{path}: {}", changes.join(", ")),
        changes,
    ))
}
