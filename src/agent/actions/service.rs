//! systemd services: enabled and running, restarted only when a step that feeds them changed.

use std::sync::Mutex;

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

/// The units' states seen since a step last changed something (`actions::perform` forgets
/// them): a port check and the service step of one server ask systemd once.
static UNITS: Mutex<Vec<(String, (String, String))>> = Mutex::new(Vec::new());

pub fn forget_units() {
    UNITS.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

/// What systemd says of `unit` (`systemctl show` names): its `ActiveState` and
/// `UnitFileState`, both from one call (each systemctl is a round trip to systemd, and a
/// re-run of a busy fleet is CPU-bound). Empty strings where systemd said nothing.
pub async fn unit_state(unit: &str) -> (String, String) {
    let known = UNITS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(u, _)| u == unit)
        .map(|(_, state)| state.clone());
    if let Some(state) = known {
        return state;
    }
    let state = ask_systemd(unit).await;
    UNITS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((unit.to_string(), state.clone()));
    state
}

async fn ask_systemd(unit: &str) -> (String, String) {
    let out = sh(&format!(
        "systemctl show -p ActiveState,UnitFileState {}",
        quote(unit)
    ))
    .await
    .map(|o| o.output)
    .unwrap_or_default();
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    (value("ActiveState"), value("UnitFileState"))
}

pub async fn apply(unit: &str, notified: bool, check_only: bool) -> Result<Outcome, StepError> {
    let q = quote(unit);
    let (active, enabled) = unit_state(unit).await;
    let enabled = enabled == "enabled";
    let active = active == "active";
    let mut changes = Vec::new();
    if !enabled {
        changes.push(format!("enable {unit}"));
    }
    if !active {
        changes.push(format!("start {unit}"));
    } else if notified {
        changes.push(format!(
            "restart {unit} (its configuration or binary changed)"
        ));
    }
    if changes.is_empty() {
        return Ok(Outcome::unchanged(format!("{unit} enabled and running")));
    }
    if check_only {
        return Ok(Outcome::changed(changes.join(", "), changes));
    }
    let verb = if active { "restart" } else { "start" };
    // A unit that crash-looped (a broken release) hit systemd's start limit: clear it, or
    // the restart onto a good release would be refused.
    let script = format!(
        "systemctl daemon-reload && systemctl enable {q} && {{ systemctl reset-failed {q} 2>/dev/null; true; }} && systemctl {verb} {q}"
    );
    let run = sh(&script)
        .await
        .map_err(|e| StepError::new(format!("cannot run systemctl: {e}")))?;
    if !run.success() {
        let log = sh(&format!("journalctl -u {q} -n 20 --no-pager"))
            .await
            .map(|o| o.output)
            .unwrap_or_default();
        return Err(StepError::new(format!("{unit} failed to {verb}"))
            .hint(format!("see `journalctl -u {unit}` on the host"))
            .with_output(&format!("{}\n{log}", run.output)));
    }
    Ok(Outcome::changed(changes.join(", "), changes))
}
