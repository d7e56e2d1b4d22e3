//! What mp-remote made on this host, recorded by the agent as its steps make it: the units it
//! enabled, the servers it supervises, the files, links and directories it created, the
//! packages it installed and the accounts it added. `clean` undoes what this says, so a new
//! kind of step never needs a clean counterpart written by hand: its action's
//! [`candidates`] are enough.
//!
//! A thing is recorded when it exists after the step that may make it, having not existed
//! before, so what a person or a package made first is never taken for
//! ours. Units and supervised servers are recorded whenever their step runs: enabling one is
//! always mp-remote's doing.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::plan::probe::Made;
use crate::plan::Action;

/// Whether `made` is there now.
pub fn exists(made: &Made) -> bool {
    match made {
        Made::Path { path } | Made::Dir { path } | Made::Conffile { path } => {
            std::fs::symlink_metadata(path).is_ok()
        }
        Made::Package { name } => package_installed(name),
        Made::Account { name } => account_exists(name),
        Made::Unit { .. } | Made::Supervised { .. } => true,
    }
}

/// Recorded whenever its step runs (not only when the step made it).
fn always(made: &Made) -> bool {
    matches!(made, Made::Unit { .. } | Made::Supervised { .. })
}

/// The record, in the order things were made.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub made: Vec<Made>,
}

impl Ledger {
    pub fn path(state_dir: &str) -> PathBuf {
        Path::new(state_dir).join("made.json")
    }

    /// A missing or unreadable record is an empty one.
    pub fn load(state_dir: &str) -> Ledger {
        super::state::load_json(&Self::path(state_dir))
    }

    pub fn save(&self, state_dir: &str) -> std::io::Result<()> {
        super::state::save_json(&Self::path(state_dir), self)
    }

    /// What `action` may make and is not recorded yet, each with whether it exists now (taken
    /// before the step runs): a re-run looks at nothing it already knows is ours.
    pub fn before(&self, action: &Action) -> Vec<(Made, bool)> {
        candidates(action)
            .into_iter()
            .filter(|m| !self.made.contains(m))
            .map(|m| {
                let there = !always(&m) && exists(&m);
                (m, there)
            })
            .collect()
    }

    /// Adds what a step made, from what was there before it ([`Ledger::before`]);
    /// true when something new was recorded.
    pub fn record(&mut self, before: Vec<(Made, bool)>) -> bool {
        let mut added = false;
        for (made, existed) in before {
            if self.made.contains(&made) || !(always(&made) || !existed && exists(&made)) {
                continue;
            }
            self.made.push(made);
            added = true;
        }
        added
    }
}

/// What `action` may make: its targets, and the directories missing on the way to them.
pub fn candidates(action: &Action) -> Vec<Made> {
    let mut out = Vec::new();
    match action {
        Action::Packages { packages } => {
            out.extend(packages.iter().map(|p| Made::Package { name: p.clone() }))
        }
        Action::InstallDeb { package, .. } => out.push(Made::Package {
            name: package.clone(),
        }),
        Action::SystemUser { name, .. } => out.push(Made::Account { name: name.clone() }),
        Action::Service { unit } => out.push(Made::Unit { name: unit.clone() }),
        Action::Supervised { name, .. } => out.push(Made::Supervised { name: name.clone() }),
        Action::File { path, .. } | Action::InstallBinary { path, .. } => owned(&mut out, path),
        Action::Directory { path, .. } => {
            parents(&mut out, path);
            out.push(Made::Dir { path: path.clone() });
        }
        Action::InstallVendorFiles { files, .. } => {
            for f in files {
                parents(&mut out, &f.path);
                out.push(Made::Conffile {
                    path: f.path.clone(),
                });
            }
        }
        Action::Script { creates, .. } => creates.iter().for_each(|p| owned(&mut out, p)),
        Action::AppRelease { dir, .. } => {
            parents(&mut out, &format!("{dir}/releases"));
            for name in ["releases", "current", "previous"] {
                out.push(Made::Path {
                    path: format!("{dir}/{name}"),
                });
            }
        }
        Action::ServiceRelease { dir, .. } => owned(&mut out, dir),
        _ => {}
    }
    out
}

/// `path` and the directories missing on the way to it.
fn owned(out: &mut Vec<Made>, path: &str) {
    parents(out, path);
    out.push(Made::Path {
        path: path.to_string(),
    });
}

/// The missing ancestors of `path`, outermost first.
fn parents(out: &mut Vec<Made>, path: &str) {
    let mut missing: Vec<&Path> = Path::new(path)
        .ancestors()
        .skip(1)
        .take_while(|p| !p.as_os_str().is_empty() && *p != Path::new("/") && !p.exists())
        .collect();
    missing.reverse();
    out.extend(missing.into_iter().map(|p| Made::Dir {
        path: p.to_string_lossy().into_owned(),
    }));
}

fn package_installed(name: &str) -> bool {
    std::process::Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", name])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).ends_with(" installed"))
}

fn account_exists(name: &str) -> bool {
    std::fs::read_to_string("/etc/passwd")
        .is_ok_and(|text| text.lines().any(|l| l.split(':').next() == Some(name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file in a new directory: both recorded, the directory as made on the way; the same
    /// file again adds nothing; a file that was there first is not ours.
    #[test]
    fn records_what_a_step_made() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("new/deeper");
        let file = dir.join("conf.toml");
        let action = Action::File {
            path: file.to_string_lossy().into_owned(),
            content: "x".into(),
            mode: 0o644,
            owner: None,
        };
        let seen = Ledger::default().before(&action);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        let mut ledger = Ledger::default();
        assert!(ledger.record(seen));
        let path = |p: &Path| p.to_string_lossy().into_owned();
        assert_eq!(
            ledger.made,
            [
                Made::Dir {
                    path: path(&tmp.path().join("new"))
                },
                Made::Dir { path: path(&dir) },
                Made::Path { path: path(&file) },
            ]
        );
        assert!(ledger.before(&action).is_empty(), "nothing left to look at");
        assert!(!ledger.record(ledger.before(&action)));
        let mut fresh = Ledger::default();
        assert!(!fresh.record(fresh.before(&action)), "it was there before");
        let unit = Action::Service {
            unit: "mp-x".into(),
        };
        assert!(fresh.record(fresh.before(&unit)));
        assert_eq!(
            fresh.made,
            [Made::Unit {
                name: "mp-x".into()
            }]
        );
    }
}
