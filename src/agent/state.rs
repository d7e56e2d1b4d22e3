//! What the agent remembers on the host between runs: each step's input hash and how it
//! ended, so a report can say "unchanged since" and a resumed run knows where it stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::event::StepStatus;
use crate::plan::Action;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub steps: BTreeMap<String, StepRecord>,
    /// Services (their step ids) a changed step notified that have not restarted since. Kept
    /// across runs: the step that restarts one may be in a later plan (the pipeline's release
    /// is installed in phase 1, its services start in phase 3), or a failure may have stopped
    /// the run before it.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub pending_notify: BTreeSet<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    pub input_hash: String,
    pub status: StepStatus,
    pub run_id: String,
}

impl State {
    pub fn path(state_dir: &str) -> PathBuf {
        Path::new(state_dir).join("state.json")
    }

    /// A missing or unreadable state is an empty one: every action checks the host anyway.
    pub fn load(state_dir: &str) -> State {
        load_json(&Self::path(state_dir))
    }

    /// Written after every step, so a killed agent loses at most the step it was in.
    pub fn save(&self, state_dir: &str) -> std::io::Result<()> {
        save_json(&Self::path(state_dir), self)
    }
}

/// A JSON file of the agent's; a missing or unreadable one reads as the default.
pub fn load_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> T {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

/// Written whole (temp file, then rename): a reader never sees half of it.
pub fn save_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?)?;
    std::fs::rename(tmp, path)
}

/// The sha256 of an action's inputs.
pub fn input_hash(action: &Action) -> String {
    let json = serde_json::to_vec(action).unwrap_or_default();
    hex::encode(Sha256::digest(json))
}
