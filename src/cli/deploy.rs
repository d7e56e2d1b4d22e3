//! `mp-remote deploy`: live step lines, then a recap per host and every failure with its hint.

use std::path::PathBuf;

use crate::agent::{AgentEvent, StepStatus};
use crate::inventory::{Host, Inventory};
use crate::report::{ExitCode, HostStatus};
use crate::run::deploy::{deploy, DeployOptions, HostDeploy};
use crate::run::FanOut;

pub struct Args {
    pub update: bool,
    pub check: bool,
    pub force: bool,
    pub agent_binary: Option<PathBuf>,
    pub quiet: bool,
    pub verbose: bool,
}

pub async fn run(inventory: &Inventory, hosts: &[&Host], fanout: &FanOut, args: Args) -> ExitCode {
    let options = DeployOptions {
        update: args.update,
        check_only: args.check,
        force: args.force,
        agent_binary: args.agent_binary,
    };
    let (quiet, verbose, check) = (args.quiet, args.verbose, args.check);
    let progress = move |host: &str, event: &AgentEvent| {
        // Steps of an earlier run that a cut connection left going, seen finishing now.
        let (event, tag) = match event {
            AgentEvent::Resumed { of, .. } => (of.as_ref(), "(earlier, cut run) "),
            event => (event, ""),
        };
        if let AgentEvent::StepFinished {
            layer,
            step,
            status,
            duration_ms,
            message,
            output_tail,
            changes,
            ..
        } = event
        {
            let show = match status {
                StepStatus::Failed => true,
                StepStatus::Changed => !quiet,
                StepStatus::Ok | StepStatus::Skipped => verbose,
            };
            if show {
                println!(
                    "{host:<14} {layer:<8} {:<9} {step:<32} {:>6} ms  {tag}{message}",
                    status_word(*status, check),
                    duration_ms
                );
                // What changed, where the one-line message does not already say it.
                for change in changes.iter().filter(|c| !message.contains(c.as_str())) {
                    println!("{:>16}- {change}", "");
                }
                if *status == StepStatus::Failed && !output_tail.is_empty() {
                    for line in output_tail.lines() {
                        println!("{:>16}| {line}", "");
                    }
                }
            }
        }
    };
    let results = match deploy(inventory, hosts, fanout, &options, &progress).await {
        Ok(results) => results,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::Usage;
        }
    };
    recap(&results, check);
    ExitCode::from_statuses(results.iter().map(|h| h.status))
}

fn status_word(status: StepStatus, check: bool) -> &'static str {
    match (status, check) {
        (StepStatus::Ok, _) => "ok",
        (StepStatus::Changed, false) => "changed",
        (StepStatus::Changed, true) => "would",
        (StepStatus::Skipped, _) => "skipped",
        (StepStatus::Failed, _) => "FAILED",
    }
}

fn recap(results: &[HostDeploy], check: bool) {
    println!();
    println!(
        "{:<14} {:<11} {:>4} {:>8} {:>7} {:>8} {:>9}  versions",
        "HOST",
        "STATUS",
        "OK",
        if check { "WOULD" } else { "CHANGED" },
        "FAILED",
        "SKIPPED",
        "TIME"
    );
    for host in results {
        let versions = host
            .facts
            .as_ref()
            .map(|_| {
                host.steps
                    .iter()
                    .filter(|s| {
                        [".packages", ".binary", ".deb"]
                            .iter()
                            .any(|end| s.step.ends_with(end))
                    })
                    .map(|s| s.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        println!(
            "{:<14} {:<11} {:>4} {:>8} {:>7} {:>8} {:>8.1}s  {}",
            host.host,
            host.status,
            host.count(StepStatus::Ok),
            host.count(StepStatus::Changed),
            host.count(StepStatus::Failed),
            host.count(StepStatus::Skipped),
            host.duration.as_secs_f64(),
            versions
        );
    }
    let changed: usize = results.iter().map(|h| h.count(StepStatus::Changed)).sum();
    let all_ok = results.iter().all(|h| h.status == HostStatus::Ok);
    if all_ok && changed == 0 {
        println!("\nnothing changed: every host already as wanted");
    }
    for host in results {
        if let Some(error) = &host.error {
            println!("\n{}: {error}", host.status);
        }
    }
}
