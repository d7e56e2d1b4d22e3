//! `mp-remote runs`: the recorded runs, oldest first; and where runs are recorded.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::progress::Settings;
use super::Cli;
use crate::report::record::InventoryRef;
use crate::report::render::text::runs_table;
use crate::report::store::{default_runs_dir, list};
use crate::report::ExitCode;

/// `--runs-dir`, else `.mp-remote/runs` beside the inventory (`./.mp-remote/runs` for the
/// embedded one).
pub fn runs_dir(cli: &Cli) -> PathBuf {
    match &cli.runs_dir {
        Some(dir) => dir.clone(),
        None => default_runs_dir(cli.inventory.as_deref()),
    }
}

/// The global flags a recorded command needs; `embedded` is the inventory used without `-i`.
pub fn settings(cli: &Cli, embedded: (&str, &str)) -> Settings {
    let inventory = match &cli.inventory {
        Some(path) => InventoryRef {
            path: path.display().to_string(),
            sha256: std::fs::read(path)
                .map(|bytes| hex::encode(Sha256::digest(&bytes)))
                .unwrap_or_default(),
        },
        None => InventoryRef {
            path: embedded.0.to_string(),
            sha256: hex::encode(Sha256::digest(embedded.1.as_bytes())),
        },
    };
    Settings::new(
        runs_dir(cli),
        inventory,
        cli.quiet,
        cli.verbose > 0,
        cli.no_color,
    )
}

pub fn run(runs_dir: &Path) -> ExitCode {
    let runs = list(runs_dir);
    if runs.is_empty() {
        println!("no runs recorded in {}", runs_dir.display());
        return ExitCode::Ok;
    }
    let records: Vec<_> = runs.iter().map(|r| &r.record).collect();
    print!("{}", runs_table(&records));
    ExitCode::Ok
}
