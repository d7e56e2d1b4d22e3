//! `mp-remote deploy` and `update`: live progress, a run record, then a recap per host and
//! every failure with its hint. Ctrl-C stops the agents and ends with 130.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::progress::{stop_agents, Recorder, Settings};
use crate::agent::StepEnd;
use crate::agent::StepStatus;
use crate::inventory::{Host, Inventory};
use crate::report::record::{
    installed_versions, BatchRecord, FactsSummary, HostState, RunResult, ServiceRecord,
};
use crate::report::{ExitCode, HostEnd, Redactor};
use crate::run::deploy::{deploy, DeployOptions, HostDeploy};
use crate::run::lease::LeaseRequest;
use crate::run::rollout::{Budget, Rolling, Serial};
use crate::run::FanOut;
use crate::stack::component;

pub struct Args {
    pub update: bool,
    pub check: bool,
    /// `--diff`: each file's change as a unified diff.
    pub diff: bool,
    pub force: bool,
    pub agent_binary: Option<PathBuf>,
    pub settings: Settings,
    pub rolling: Option<Rolling>,
    /// `rollback`: to this release (inner None: the previous one).
    pub rollback: Option<Option<String>>,
    /// `--retry RUN`: only the hosts that did not end ok in that run.
    pub retry: Option<String>,
    /// `--no-relay`: every host's agent uploaded from here.
    pub no_relay: bool,
}

/// The flags every rolling command shares.
#[derive(Debug, Clone, clap::Args)]
pub struct RollingArgs {
    /// Roll in batches: N hosts, N% of them, or a list like 1,5,20% (the last size repeats).
    /// NATS, ClickHouse and storage hosts roll one at a time whatever it says.
    #[arg(long, value_name = "N|N%|LIST")]
    pub serial: Option<Serial>,
    /// Failed hosts tolerated per batch and in all (N or N%) before the rollout stops.
    #[arg(long, value_name = "N|N%", default_value = "0", requires = "serial")]
    pub max_failed: Budget,
    /// Unreachable hosts tolerated per batch and in all (N or N%), counted apart from failed.
    #[arg(long, value_name = "N|N%", default_value = "0", requires = "serial")]
    pub max_unreachable: Budget,
}

impl RollingArgs {
    pub fn rolling(&self) -> Option<Rolling> {
        self.serial.clone().map(|serial| Rolling {
            serial,
            max_failed: self.max_failed,
            max_unreachable: self.max_unreachable,
        })
    }
}

pub async fn run(inventory: &Inventory, hosts: &[&Host], fanout: &FanOut, args: Args) -> ExitCode {
    let command = match (&args.rollback, args.update) {
        (Some(_), _) => "rollback",
        (None, true) => "update",
        (None, false) => "deploy",
    };
    let retried;
    let mut takeover = None;
    let hosts = match &args.retry {
        Some(which) => match retry_hosts(&args.settings, which, hosts) {
            Ok((_, h)) if h.is_empty() => {
                println!("nothing to retry: every host of run {which} ended ok");
                return ExitCode::Ok;
            }
            Ok((dead_run, h)) => {
                takeover = dead_run;
                retried = h;
                &retried[..]
            }
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::Usage;
            }
        },
        None => hosts,
    };
    let redactor = Redactor::default();
    let names: Vec<String> = hosts.iter().map(|h| h.name.clone()).collect();
    let recorder = Recorder::start(
        &args.settings,
        command,
        args.check,
        &names,
        redactor.clone(),
    );
    let options = DeployOptions {
        update: args.update,
        check_only: args.check,
        diff: args.diff,
        force: args.force,
        agent_binary: args.agent_binary,
        no_relay: args.no_relay,
        redactor,
        rolling: args.rolling,
        rollback: args.rollback,
        lease: (!args.check).then(|| LeaseRequest {
            takeover,
            ..LeaseRequest::new(recorder.id(), command)
        }),
    };
    let shared = recorder.clone();
    let progress =
        move |host: &str, event: &crate::agent::AgentEvent| shared.agent_event(host, event);
    let shared = recorder.clone();
    let notes = move |note: crate::run::rollout::RolloutNote| shared.rollout(note);
    // Each host is recorded as soon as its part is over (the live view counts it), the rest
    // when the run ends.
    let told = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let tell = |host: &crate::run::deploy::HostDeploy| {
        let mut told = told.lock().unwrap_or_else(|e| e.into_inner());
        if told.insert(host.host.clone()) {
            let address = hosts
                .iter()
                .find(|h| h.name == host.host)
                .map_or("127.0.0.1", |h| h.private_address.as_str());
            recorder.host_done(&host.host, host_end(host, address));
        }
    };
    let (code, interrupted, error) = match recorder
        .interruptible(deploy(
            inventory, hosts, fanout, &options, &progress, &notes, &tell,
        ))
        .await
    {
        Ok(Ok(result)) => {
            for host in &result.hosts {
                tell(host);
            }
            if !result.batches.is_empty() {
                recorder.batches(
                    result.batches.iter().map(batch_record).collect(),
                    result.stopped.clone(),
                );
            }
            let code = ExitCode::from_statuses(result.hosts.iter().map(|h| h.status));
            (code, false, None)
        }
        Ok(Err(error)) => {
            eprintln!("error: {error:#}");
            (ExitCode::Usage, false, Some(format!("{error:#}")))
        }
        Err(_signal) => {
            stop_agents(&recorder, hosts, fanout).await;
            if let Some(request) = &options.lease {
                release_leases(hosts, fanout, &request.run_id).await;
            }
            (ExitCode::Interrupted, true, None)
        }
    };
    let record = recorder.finish(code, interrupted, error);
    if code != ExitCode::Usage {
        recorder.print_recap(&record);
    }
    code
}

/// After Ctrl-C the run's work was dropped mid-way: its leases go now, not at their expiry.
async fn release_leases(hosts: &[&Host], fanout: &FanOut, run_id: &str) {
    let (connected, _) = crate::run::session::connect_all(hosts, fanout).await;
    for error in crate::run::lease::release_all(&connected, run_id).await {
        eprintln!("warning: {error}");
    }
    for c in &connected {
        c.transport.close().await;
    }
}

/// The hosts of run `which` that did not end ok (failed, unreachable, timed out,
/// interrupted, skipped by a stopped rollout, or lost with the control node), among those
/// selected; refused when the inventory changed since. With them that run's id when its
/// control node is gone (killed): the retry may take over the leases it left.
fn retry_hosts<'h>(
    settings: &Settings,
    which: &str,
    selected: &[&'h Host],
) -> Result<(Option<String>, Vec<&'h Host>), String> {
    let run = crate::report::store::find(&settings.runs_dir, which)?;
    let record = &run.record;
    if record.inventory.sha256 != settings.inventory.sha256 {
        return Err(format!(
            "--retry {which}: run {} used another inventory ({} with sha256 {}…; now {}…): a retry repeats that run on the hosts it did not finish, so it needs the same inventory; deploy without --retry instead",
            record.id,
            record.inventory.path,
            &record.inventory.sha256[..12.min(record.inventory.sha256.len())],
            &settings.inventory.sha256[..12.min(settings.inventory.sha256.len())]
        ));
    }
    let unfinished: Vec<&str> = record
        .hosts
        .iter()
        .filter(|h| h.status != HostState::Ok)
        .map(|h| h.name.as_str())
        .collect();
    // A record still `running` after the store's look is a live run: never take its leases.
    let dead = (record.result != RunResult::Running).then(|| record.id.clone());
    Ok((
        dead,
        selected
            .iter()
            .copied()
            .filter(|h| unfinished.contains(&h.name.as_str()))
            .collect(),
    ))
}

fn batch_record(b: &crate::run::rollout::BatchOutcome) -> BatchRecord {
    BatchRecord {
        index: b.index,
        group: b.group.as_str().into(),
        hosts: b.hosts.clone(),
        result: b.result.as_str().into(),
        duration_ms: b.duration.as_millis() as u64,
        detail: b.detail.clone(),
    }
}

/// What the record keeps of a host's deploy.
fn host_end(host: &HostDeploy, address: &str) -> HostEnd {
    let mut end = HostEnd::new(host.status, host.error.clone(), host.duration);
    end.batch = host.batch;
    end.note = host.note.clone();
    if let Some(facts) = &host.facts {
        end.facts = Some(FactsSummary::from(facts));
        end.versions = installed_versions(facts);
    }
    end.versions.extend(versions_from_steps(&host.steps));
    end.services = services_from_steps(&host.steps, address);
    end
}

/// Each service's endpoint, and its health as the deploy's health step found it.
fn services_from_steps(steps: &[StepEnd], address: &str) -> Vec<ServiceRecord> {
    component::ALL
        .iter()
        .map(|c| (c.health_step(), c.name, c.endpoint(address)))
        .filter_map(|(id, name, endpoint)| {
            let step = steps.iter().find(|s| s.step == id)?;
            Some(ServiceRecord {
                name: name.to_string(),
                endpoint: Some(endpoint),
                healthy: match step.status {
                    StepStatus::Ok | StepStatus::Changed => Some(true),
                    StepStatus::Failed => Some(false),
                    StepStatus::Skipped => None,
                },
                detail: Some(step.message.clone()),
            })
        })
        .collect()
}

/// The versions the install steps name ("installed nats-server 2.10.7 (...)", "nats-server
/// 2.9.10, clickhouse-server 18.16.1 already installed"): they override what the facts found
/// before the run.
fn versions_from_steps(steps: &[StepEnd]) -> BTreeMap<String, String> {
    let mut versions = BTreeMap::new();
    for step in steps {
        // What the install layer put in place, then what the running server reports (the
        // schema and stream steps name it), which wins.
        let sources: &[(&str, &str)] = match step.step.as_str() {
            "install.clickhouse.binary" => &[("clickhouse-server", "clickhouse")],
            "init.clickhouse.schema" => &[("clickhouse-server", "ClickHouse")],
            "init.nats.streams" => &[("nats-server", "nats-server")],
            _ if step.layer.as_str() == "install" => &[
                ("nats-server", "nats-server"),
                ("clickhouse-server", "clickhouse-server"),
            ],
            _ => &[],
        };
        for (component, said) in sources {
            if let Some(version) = version_after(&step.message, said) {
                versions.insert(component.to_string(), version);
            }
        }
        // The pipeline's release: this very binary, named by its sha256 prefix.
        if step.step == "install.app.release" {
            if let Some(id) = step
                .message
                .split_whitespace()
                .skip_while(|w| *w != "release")
                .nth(1)
                .filter(|id| id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()))
            {
                versions.insert(
                    "mp-remote".into(),
                    format!("{} (release {id})", env!("CARGO_PKG_VERSION")),
                );
            }
        }
    }
    versions
}

/// The version that follows `name ` in `text`, if it starts with a digit.
fn version_after(text: &str, name: &str) -> Option<String> {
    let rest = &text[text.find(&format!("{name} "))? + name.len() + 1..];
    let token: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !",;()".contains(*c))
        .collect();
    token
        .starts_with(|c: char| c.is_ascii_digit())
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::LayerName;
    use clap::Parser;

    #[test]
    fn bad_serials_and_budgets_are_usage_errors_before_anything_runs() {
        let parse = |args: &[&str]| {
            crate::cli::Cli::try_parse_from(["mp-remote"].iter().chain(args.iter()))
        };
        for args in [
            &["deploy", "--serial", "0"][..],
            &["update", "--serial", "150%"],
            &["update", "--serial", "1,,5"],
            &["update", "--serial", "1", "--max-failed", "-1"],
            &["update", "--serial", "1", "--max-unreachable", "101%"],
            &["update", "--max-failed", "1"],
            &["rollback", "--serial", "0%"],
        ] {
            let error = parse(args).expect_err(&format!("{args:?} parsed"));
            // clap's usage errors go to stderr, which main maps to exit 1.
            assert!(error.use_stderr(), "{args:?}: {error}");
        }
        let ok = parse(&["update", "--serial", "1,5,20%", "--max-failed", "10%"]).unwrap();
        let crate::cli::Command::Update { rolling, .. } = ok.command else {
            panic!("not update")
        };
        let rolling = rolling.rolling().unwrap();
        assert_eq!(rolling.serial.to_string(), "1,5,20%");
        assert_eq!(rolling.max_failed, Budget::Percent(10));
        assert_eq!(rolling.max_unreachable, Budget::Hosts(0));
    }

    #[test]
    fn versions_from_step_messages() {
        let cases = [
            (
                "installed nats-server 2.10.7 (/usr/local/bin/nats-server)",
                "nats-server",
                Some("2.10.7"),
            ),
            (
                "nats-server 2.9.10, clickhouse-server 18.16.1 already installed",
                "clickhouse-server",
                Some("18.16.1"),
            ),
            (
                "would install nats-server, clickhouse-server",
                "nats-server",
                None,
            ),
            ("nothing here", "nats-server", None),
        ];
        for (text, name, expected) in cases {
            assert_eq!(version_after(text, name).as_deref(), expected, "{text}");
        }
    }

    #[test]
    fn the_pipeline_release_is_a_version_and_the_health_steps_are_services() {
        let step = |id: &str, message: &str, status| StepEnd {
            layer: LayerName::Install,
            step: id.into(),
            status,
            duration_ms: 0,
            message: message.into(),
            changes: vec![],
            output_tail: String::new(),
            hint: None,
            output: String::new(),
            data: BTreeMap::new(),
            diff: String::new(),
            cpu_ms: None,
        };
        for message in [
            "install release 0123456789abcdef as /opt/marketprism/current",
            "switch /opt/marketprism/current to release 0123456789abcdef (was fedcba9876543210)",
            "release 0123456789abcdef is current",
        ] {
            let versions =
                versions_from_steps(&[step("install.app.release", message, StepStatus::Ok)]);
            assert_eq!(
                versions["mp-remote"],
                format!("{} (release 0123456789abcdef)", env!("CARGO_PKG_VERSION")),
                "{message}"
            );
        }
        // A release's binary, then the version the running server reports, which wins.
        let versions = versions_from_steps(&[
            step(
                "install.clickhouse.binary",
                "installed clickhouse 25.10.1.3832 (/usr/local/bin/clickhouse)",
                StepStatus::Changed,
            ),
            step(
                "init.nats.streams",
                "streams: created MARKET_DATA, ORDERBOOK_SNAP (nats-server 2.9.10)",
                StepStatus::Changed,
            ),
        ]);
        assert_eq!(versions["clickhouse-server"], "25.10.1.3832");
        assert_eq!(versions["nats-server"], "2.9.10");
        let versions = versions_from_steps(&[step(
            "init.clickhouse.schema",
            "schema legacy: created database marketprism_hot and 8 tables (ClickHouse 18.16.1); ...",
            StepStatus::Changed,
        )]);
        assert_eq!(versions["clickhouse-server"], "18.16.1");
        let services = services_from_steps(
            &[
                step("start.storage.health", "healthy after 1 s", StepStatus::Ok),
                step("init.nats.health", "not healthy", StepStatus::Failed),
            ],
            "10.0.0.5",
        );
        let seen: Vec<(&str, Option<&str>, Option<bool>)> = services
            .iter()
            .map(|s| (s.name.as_str(), s.endpoint.as_deref(), s.healthy))
            .collect();
        assert_eq!(
            seen,
            [
                ("nats", Some("nats://10.0.0.5:4222"), Some(false)),
                ("storage", Some("http://10.0.0.5:8085/health"), Some(true))
            ]
        );
    }
}
