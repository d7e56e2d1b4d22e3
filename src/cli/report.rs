//! `mp-remote report [RUN|latest]`: a recorded run as text, JSON (the run.json schema), JUnit
//! XML or one self-contained HTML page.

use std::path::{Path, PathBuf};

use crate::report::render::{html, junit, text};
use crate::report::store::find;
use crate::report::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Junit,
    Html,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// A run id (or a unique prefix of one), or `latest`.
    #[arg(default_value = "latest", value_name = "RUN")]
    pub run: String,
    /// Only this host (text: its details).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub fn run(runs_dir: &Path, args: &Args) -> ExitCode {
    let stored = match find(runs_dir, &args.run) {
        Ok(stored) => stored,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::Usage;
        }
    };
    let mut record = stored.record;
    if let Some(host) = &args.host {
        if !record.hosts.iter().any(|h| &h.name == host) {
            let names: Vec<&str> = record.hosts.iter().map(|h| h.name.as_str()).collect();
            eprintln!(
                "error: run {} has no host {host}; its hosts: {}",
                record.id,
                names.join(", ")
            );
            return ExitCode::Usage;
        }
        if args.format != Format::Text {
            record.hosts.retain(|h| &h.name == host);
        }
    }
    let rendered = match args.format {
        Format::Text => text::report(&record, args.host.as_deref()),
        Format::Json => match serde_json::to_string_pretty(&record) {
            Ok(json) => json + "\n",
            Err(error) => {
                eprintln!("error: cannot encode the run as JSON: {error}");
                return ExitCode::Usage;
            }
        },
        Format::Junit => junit::render(&record),
        Format::Html => html::render(&record),
    };
    match &args.output {
        None => print!("{rendered}"),
        Some(path) => {
            if let Err(error) = std::fs::write(path, rendered) {
                eprintln!("error: cannot write {}: {error}", path.display());
                return ExitCode::Usage;
            }
            eprintln!("wrote {}", path.display());
        }
    }
    ExitCode::Ok
}
