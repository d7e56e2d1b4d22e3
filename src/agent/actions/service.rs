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

/// Asks systemd about all of `units` in one `systemctl show` (a re-run checks every server's
/// unit: one process instead of one per unit), remembered like [`unit_state`]'s answers.
pub async fn ask_ahead(units: &[&str]) {
    if units.len() < 2 {
        return;
    }
    let quoted: Vec<String> = units.iter().map(|u| quote(u)).collect();
    let Ok(out) = sh(&format!(
        "systemctl show -p ActiveState,UnitFileState {}",
        quoted.join(" ")
    ))
    .await
    else {
        return;
    };
    let states = states_of(&out.output, units.len());
    if let Some(states) = states {
        let mut known = UNITS.lock().unwrap_or_else(|e| e.into_inner());
        for (unit, state) in units.iter().zip(states) {
            if !known.iter().any(|(u, _)| u == unit) {
                known.push((unit.to_string(), state));
            }
        }
    }
}

/// `systemctl show`'s blocks for `count` units (one per unit, in order, a blank line between
/// them) as (ActiveState, UnitFileState); None unless there are exactly `count`.
fn states_of(out: &str, count: usize) -> Option<Vec<(String, String)>> {
    let blocks: Vec<&str> = out
        .split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .collect();
    (blocks.len() == count).then(|| {
        blocks
            .iter()
            .map(|b| (value(b, "ActiveState"), value(b, "UnitFileState")))
            .collect()
    })
}

async fn ask_systemd(unit: &str) -> (String, String) {
    let out = show(unit, "ActiveState,UnitFileState").await;
    (value(&out, "ActiveState"), value(&out, "UnitFileState"))
}

/// `systemctl show -p PROPERTIES unit`'s output; empty where systemctl could not answer.
async fn show(unit: &str, properties: &str) -> String {
    sh(&format!("systemctl show -p {properties} {}", quote(unit)))
        .await
        .map(|o| o.output)
        .unwrap_or_default()
}

/// One property's value in `systemctl show`'s `KEY=value` lines; empty when absent.
fn value(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// What decides whether systemd must re-read the unit's files before a start.
const RELOAD_PROPERTIES: &str = "NeedDaemonReload,LoadState,DropInPaths";

/// Where mp-remote (and an admin) put a unit's drop-ins.
const DROP_IN_DIRS: [&str; 2] = ["/etc/systemd/system", "/run/systemd/system"];

/// The directories of `unit`'s drop-ins in [`DROP_IN_DIRS`] (`nats-server` is
/// `nats-server.service`).
fn drop_in_dirs(unit: &str) -> Vec<String> {
    let file = if unit.contains('.') {
        unit.to_string()
    } else {
        format!("{unit}.service")
    };
    DROP_IN_DIRS
        .iter()
        .map(|dir| format!("{dir}/{file}.d/"))
        .collect()
}

/// The `*.conf` drop-ins of `unit` on disk, sorted.
fn drop_ins_on_disk(unit: &str) -> Vec<String> {
    let mut found: Vec<String> = drop_in_dirs(unit)
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .map(|entry| entry.path().to_string_lossy().into_owned())
        .filter(|path| path.ends_with(".conf"))
        .collect();
    found.sort();
    found
}

/// The commands that (re)start `unit`, with only the extra ones it needs. Each
/// `daemon-reload` (and a plain `systemctl enable`, which reloads too and runs `update-rc.d`
/// for a unit with an init script) re-runs every systemd generator: on a 10-host fresh
/// deploy those were 13% of the hosts' CPU. So: reload only when the unit's files changed or
/// it is not loaded; enable without a reload, and only what is not enabled (the link counts
/// from the next boot; the start below is explicit). `NeedDaemonReload` alone misses a
/// drop-in in a new `.d` directory (systemd 252 answers from a cache of the unit
/// directories), so the drop-ins systemd loaded are compared with those on disk.
fn start_script(unit: &str, verb: &str, enabled: bool, shown: &str, on_disk: &[String]) -> String {
    let q = quote(unit);
    let mut commands = Vec::new();
    if needs_reload(unit, shown, on_disk) {
        commands.push("systemctl daemon-reload".to_string());
    }
    if !enabled {
        commands.push(format!("systemctl enable --no-reload {q}"));
    }
    // Always: a crash-looping unit counts its starts even while `activating`, and only
    // reset-failed clears that count (its cost is one call, no reload).
    commands.push(format!(
        "{{ systemctl reset-failed {q} 2>/dev/null; true; }}"
    ));
    commands.push(format!("systemctl {verb} {q}"));
    commands.join(" && ")
}

/// Whether systemd must re-read `unit`'s files: they changed, it is not loaded, or the
/// drop-ins it loaded (`shown`'s `DropInPaths`) are not those on disk.
fn needs_reload(unit: &str, shown: &str, on_disk: &[String]) -> bool {
    let dirs = drop_in_dirs(unit);
    let mut loaded_drop_ins: Vec<String> = value(shown, "DropInPaths")
        .split_whitespace()
        .filter(|path| dirs.iter().any(|dir| path.starts_with(dir.as_str())))
        .map(str::to_string)
        .collect();
    loaded_drop_ins.sort();
    value(shown, "NeedDaemonReload") != "no"
        || value(shown, "LoadState") != "loaded"
        || loaded_drop_ins != on_disk
}

/// systemd reads `unit`'s current files now, where a start follows in a later plan: a fresh
/// NATS cluster's nodes start together (`plan::cut_nats_start`), and a reload there would sit
/// between the last host's install and every node's start.
pub async fn load(unit: &str, check_only: bool) -> Result<Outcome, StepError> {
    let shown = show(unit, RELOAD_PROPERTIES).await;
    if !needs_reload(unit, &shown, &drop_ins_on_disk(unit)) {
        return Ok(Outcome::unchanged(format!(
            "systemd has {unit}'s current files"
        )));
    }
    let change = vec![format!("reload systemd's units ({unit}'s files changed)")];
    if check_only {
        return Ok(Outcome::changed(format!("would {}", change[0]), change));
    }
    let run = sh("systemctl daemon-reload")
        .await
        .map_err(|e| StepError::new(format!("cannot run systemctl: {e}")))?;
    if !run.success() {
        return Err(StepError::new("systemctl daemon-reload failed")
            .hint("see `journalctl -b -u init.scope` on the host")
            .with_output(&run.output));
    }
    Ok(Outcome::changed(change[0].clone(), change))
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
    let shown = show(unit, RELOAD_PROPERTIES).await;
    let script = start_script(unit, verb, enabled, &shown, &drop_ins_on_disk(unit));
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

#[cfg(test)]
mod tests {
    use super::start_script;

    const LOADED: &str = "NeedDaemonReload=no\nLoadState=loaded\nDropInPaths=\n";

    /// What always runs before the start: clearing the start-rate count.
    fn reset(unit: &str) -> String {
        format!("{{ systemctl reset-failed {unit} 2>/dev/null; true; }}")
    }

    #[test]
    fn one_show_answers_for_every_unit_in_order() {
        let out = "ActiveState=active\nUnitFileState=enabled\n\nActiveState=inactive\nUnitFileState=disabled\n";
        assert_eq!(
            super::states_of(out, 2),
            Some(vec![
                ("active".into(), "enabled".into()),
                ("inactive".into(), "disabled".into())
            ])
        );
        // An answer that does not split into one block per unit is not guessed at.
        assert_eq!(super::states_of("ActiveState=active\n", 2), None);
    }

    #[test]
    fn a_loaded_enabled_unit_is_started_without_a_reload() {
        assert_eq!(
            start_script("nats-server", "start", true, LOADED, &[]),
            format!("{} && systemctl start nats-server", reset("nats-server"))
        );
    }

    #[test]
    fn a_drop_in_systemd_has_not_loaded_reloads_even_when_systemd_says_no_need() {
        let drop_in = ["/etc/systemd/system/nats-server.service.d/mp-remote.conf".to_string()];
        assert_eq!(
            start_script("nats-server.service", "start", true, LOADED, &drop_in),
            format!(
                "systemctl daemon-reload && {} && systemctl start nats-server.service",
                reset("nats-server.service")
            )
        );
        let loaded = LOADED.replace("DropInPaths=", &format!("DropInPaths={}", drop_in[0]));
        assert!(!start_script("nats-server", "start", true, &loaded, &drop_in).contains("reload"));
        // A drop-in for every service is not the unit's own.
        let global = LOADED.replace(
            "DropInPaths=",
            "DropInPaths=/etc/systemd/system/service.d/x.conf",
        );
        assert!(!start_script("nats-server", "start", true, &global, &[]).contains("reload"));
    }

    #[test]
    fn a_changed_unit_reloads_and_a_disabled_unit_is_enabled_without_a_second_reload() {
        let shown = "NeedDaemonReload=yes\nLoadState=loaded\n";
        assert_eq!(
            start_script("nats-server", "restart", false, shown, &[]),
            format!(
                "systemctl daemon-reload && systemctl enable --no-reload nats-server && {} && systemctl restart nats-server",
                reset("nats-server")
            )
        );
    }

    #[test]
    fn an_unanswered_show_or_a_unit_not_loaded_reloads() {
        for shown in ["", "NeedDaemonReload=no\nLoadState=not-found\n"] {
            assert!(start_script("mp-storage", "start", true, shown, &[])
                .starts_with("systemctl daemon-reload && "));
        }
    }
}
