//! `agent clean`: undoes a deploy from what the host's record says mp-remote made there
//! (`agent::ledger`), plus what the declarations say (for a host deployed before the record
//! existed). Units and supervised servers stop first, then files go (newest first), then
//! packages and accounts; data directories stay unless `purge_data`, and then only their
//! contents go. It does only what is still there, so a second clean is a no-op.

use std::path::Path;

use tokio::process::Command;

use super::observe::systemd;
use crate::agent::ledger::{self, Ledger};
use crate::agent::supervise;
use crate::plan::probe::{CleanRequest, Cleaned, Made};

pub async fn clean(request: &CleanRequest) -> Cleaned {
    let mut out = Cleaned::default();
    if !is_root() {
        out.failed
            .push("not root: connect as root, or set become = true with passwordless sudo".into());
        return out;
    }
    // A deploy's agent holds the lock while it works: nothing is undone under it. A host
    // that never had a state directory has no agent to wait for (and must not get one).
    let _lock = if Path::new(&request.state_dir).is_dir() {
        match crate::agent::lock::acquire(&request.state_dir, std::time::Duration::ZERO, || {})
            .await
        {
            Ok(lock) => Some(lock),
            Err(_) => {
                out.failed.push(format!(
                    "an mp-remote agent holds {}/agent.lock (a deploy is running): wait for it to finish, then clean again",
                    request.state_dir
                ));
                return out;
            }
        }
    } else {
        None
    };
    let all = everything(request);
    let data: Vec<&str> = request.data.iter().map(|(p, _)| p.as_str()).collect();
    for made in all
        .iter()
        .filter(|m| matches!(m, Made::Unit { .. } | Made::Supervised { .. }))
    {
        stop(made, &mut out).await;
    }
    for made in &all {
        match made {
            Made::Path { path } if !holds_data(path, &data) => remove(path, &mut out),
            Made::Conffile { path } if request.purge_data => remove(path, &mut out),
            Made::Dir { path } if !holds_data(path, &data) => remove_if_empty(path, &mut out),
            _ => {}
        }
    }
    if request.purge_data {
        for dir in &data {
            wipe(dir, &mut out);
        }
    }
    let verb = if request.purge_data {
        "purge"
    } else {
        "remove"
    };
    for made in &all {
        if let Made::Package { name } = made {
            package(verb, name, request.purge_data, &mut out).await;
        }
    }
    if systemd() {
        let _ = Command::new("systemctl")
            .arg("daemon-reload")
            .output()
            .await;
    }
    for made in &all {
        if let Made::Account { name } = made {
            if request.purge_data || !request.data_accounts.contains(name) {
                account(name, &mut out).await;
            }
        }
    }
    for (dir, owner) in &request.data {
        if request.purge_data {
            home(dir, owner, &mut out).await;
        } else if Path::new(dir).exists() {
            out.kept.push(dir.clone());
        }
    }
    out
}

/// The record's entries newest first (undo in reverse), then the declared ones it lacks.
fn everything(request: &CleanRequest) -> Vec<Made> {
    let mut all: Vec<Made> = Ledger::load(&request.state_dir)
        .made
        .into_iter()
        .rev()
        .collect();
    for made in &request.declared {
        if !all.contains(made) {
            all.push(made.clone());
        }
    }
    // The state directory holds the record and the lock: it goes last.
    let state = Made::Path {
        path: request.state_dir.clone(),
    };
    if let Some(i) = all.iter().position(|m| *m == state) {
        let state = all.remove(i);
        all.push(state);
    }
    all
}

/// `path` is a data directory, or holds one.
fn holds_data(path: &str, data: &[&str]) -> bool {
    let path = Path::new(path);
    data.iter().any(|d| Path::new(d).starts_with(path))
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

async fn stop(made: &Made, out: &mut Cleaned) {
    match made {
        Made::Unit { name } if systemd() => {
            let active = run("systemctl", &["is-active", "--quiet", name])
                .await
                .is_ok();
            let enabled = run("systemctl", &["is-enabled", "--quiet", name])
                .await
                .is_ok();
            if !(active || enabled) {
                return;
            }
            match run("systemctl", &["disable", "--now", name]).await {
                Ok(_) => out.did.push(format!("stopped and disabled {name}")),
                Err(e) => out
                    .failed
                    .push(format!("systemctl disable --now {name} failed: {e}")),
            }
        }
        // Without systemd, deploy runs the servers under mp-remote's own supervisor.
        Made::Unit { name } | Made::Supervised { name } if !systemd() => {
            let running = supervise::inspect(name);
            let Some((pid, _)) = running.supervisor else {
                return;
            };
            match super::control::stop_supervised(name, pid, running.server).await {
                Ok(()) => out
                    .did
                    .push(format!("stopped {name} (mp-remote supervisor)")),
                Err(why) => out
                    .failed
                    .push(format!("cannot stop {name} (supervisor pid {pid}): {why}")),
            }
        }
        _ => {}
    }
}

fn remove(path: &str, out: &mut Cleaned) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let removed = if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    };
    match removed {
        Ok(()) => out.did.push(format!("removed {path}")),
        Err(e) => out.failed.push(format!("cannot remove {path}: {e}")),
    }
}

/// A directory made on the way to something: it goes when nothing else is in it.
fn remove_if_empty(path: &str, out: &mut Cleaned) {
    let empty = std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none());
    if empty && std::fs::remove_dir(path).is_ok() {
        out.did.push(format!("removed {path}"));
    }
}

fn wipe(dir: &str, out: &mut Cleaned) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut any = false;
    for entry in entries.flatten() {
        any = true;
        let path = entry.path();
        let gone = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        if let Err(e) = gone {
            out.failed.push(format!(
                "cannot delete the data in {dir}: {}: {e}",
                path.display()
            ));
            return;
        }
    }
    if any {
        out.did.push(format!("deleted the data in {dir}"));
    }
}

/// `apt-get remove` skips what is not installed; `purge` also takes leftover config files.
async fn package(verb: &str, name: &str, purge: bool, out: &mut Cleaned) {
    let status = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", name])
        .output()
        .await
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let present = if purge {
        !(status.is_empty() || status.ends_with("not-installed"))
    } else {
        status.ends_with(" installed")
    };
    if !present {
        return;
    }
    let done = Command::new("apt-get")
        .args([verb, "-y", "-q", name])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(std::process::Stdio::null())
        .output()
        .await;
    match done {
        Ok(o) if o.status.success() => out.did.push(format!("apt-get {verb} {name}")),
        Ok(o) => out.failed.push(format!(
            "apt-get {verb} {name} failed: {}",
            crate::agent::outcome::tail(
                &(String::from_utf8_lossy(&o.stdout) + String::from_utf8_lossy(&o.stderr)),
                10
            )
        )),
        Err(e) => out.failed.push(format!("cannot run apt-get: {e}")),
    }
}

/// An account goes only when its comment says mp-remote made it.
async fn account(name: &str, out: &mut Cleaned) {
    let ours = std::fs::read_to_string("/etc/passwd").is_ok_and(|text| {
        text.lines().any(|l| {
            let fields: Vec<&str> = l.split(':').collect();
            fields.first() == Some(&name)
                && fields
                    .get(4)
                    .is_some_and(|c| c.contains("created by mp-remote"))
        })
    });
    if !ours {
        return;
    }
    match run("userdel", &[name]).await {
        Ok(_) => out.did.push(format!("removed user {name}")),
        Err(e) => out.failed.push(format!("userdel {name} failed: {e}")),
    }
}

/// Debian's clickhouse-server purge deletes its home and a reinstall does not make it again
/// (the account survives): each data directory is left in place, empty, for a later deploy.
async fn home(dir: &str, owner: &str, out: &mut Cleaned) {
    if Path::new(dir).is_dir() || !ledger::exists(&Made::Account { name: owner.into() }) {
        return;
    }
    if let Err(e) = run(
        "install",
        &["-d", "-o", owner, "-g", owner, "-m", "750", dir],
    )
    .await
    {
        out.failed.push(format!("cannot make {dir} again: {e}"));
    }
}

/// Runs a command; Err holds its exit status and output.
async fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the record says goes (a directory made on the way only when empty), a vendor's
    /// conffile and the data stay, the state directory goes last; with `purge_data` the
    /// conffile goes and the data directory is emptied but kept.
    #[tokio::test]
    async fn undoes_the_record_and_keeps_the_data() {
        if !is_root() {
            eprintln!("not root: clean refuses to run, nothing to test here");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let at = |p: &str| tmp.path().join(p).to_string_lossy().into_owned();
        let state = at("state");
        for dir in ["made/on-the-way", "shared", "data/inner"] {
            std::fs::create_dir_all(at(dir)).unwrap();
        }
        for file in [
            "made/on-the-way/conf",
            "shared/conf",
            "shared/theirs",
            "conffile",
            "data/inner/rows",
        ] {
            std::fs::write(at(file), "x").unwrap();
        }
        let ledger = Ledger {
            made: vec![
                Made::Dir { path: at("made") },
                Made::Path {
                    path: at("made/on-the-way"),
                },
                Made::Dir { path: at("shared") },
                Made::Path {
                    path: at("shared/conf"),
                },
                Made::Conffile {
                    path: at("conffile"),
                },
                Made::Path { path: at("data") },
            ],
        };
        ledger.save(&state).unwrap();
        let request = CleanRequest {
            state_dir: state.clone(),
            purge_data: false,
            declared: vec![Made::Path {
                path: state.clone(),
            }],
            data: vec![(at("data/inner"), "root".into())],
            data_accounts: vec![],
            release_lease: None,
        };
        let done = clean(&request).await;
        assert!(done.failed.is_empty(), "{done:?}");
        let exists = |p: &str| Path::new(&at(p)).exists();
        assert!(
            !exists("made") && !exists("shared/conf") && !exists("state"),
            "{done:?}"
        );
        assert!(
            exists("shared/theirs"),
            "a directory with someone's file stays"
        );
        assert!(exists("conffile") && exists("data/inner/rows"));
        assert_eq!(done.kept, [at("data/inner")]);
        assert_eq!(
            clean(&request).await,
            Cleaned {
                kept: vec![at("data/inner")],
                ..Cleaned::default()
            }
        );

        ledger.save(&state).unwrap();
        let purge = CleanRequest {
            purge_data: true,
            ..request
        };
        let done = clean(&purge).await;
        assert!(
            !exists("conffile") && exists("data/inner") && !exists("data/inner/rows"),
            "{done:?}"
        );
        assert!(done
            .did
            .contains(&format!("deleted the data in {}", at("data/inner"))));
    }
}
