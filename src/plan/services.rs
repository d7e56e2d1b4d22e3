//! The user's own services (`[services.NAME]`) in a host's plan, after the pipeline: Python
//! and its venv module (kind python), the account, the release the control node packed and
//! uploaded, the venv keyed by the requirements, the env file with the secrets, the unit, the
//! service running, its health. Every file and the release notify the service, so it restarts
//! only when one of them changed. No I/O: what needs the control node's files (the archive's
//! sha256, the secrets, the venv key) comes in as [`Prepared`].
//!
//! On the host, per service: `/opt/mp-services/NAME/{releases/<id>,current,previous,venvs/<id>,venv}`,
//! `/etc/mp-services/NAME.env` (0600, root) and `/etc/systemd/system/mp-svc-NAME.service`.

use std::collections::BTreeMap;

use crate::facts::{Facts, Init};
use crate::inventory::{Host, ServiceKind, ServiceProbe, UserService};
use crate::stack::component;
use crate::stack::managed::{with_marker, CommentStyle};

use super::build::{PlanError, STATE_DIR};
use super::model::{Action, HostPlan, JsonExpectation, LayerName, Step};

/// Where every user service's releases and venvs live.
pub const SERVICES_DIR: &str = "/opt/mp-services";
/// Where their env files (with the secrets) live.
pub const ENV_DIR: &str = "/etc/mp-services";
/// The OS packages a Python service needs: the interpreter and its venv module (Debian splits
/// them).
pub const PYTHON_PACKAGES: [&str; 2] = ["python3", "python3-venv"];

/// What the control node prepared for one service before planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The sha256 of its packed directory: the release id.
    pub sha256: String,
    /// Where the uploaded archive is on the host.
    pub archive: String,
    /// Python: sha256 of the requirements and their source (index or wheelhouse).
    pub venv_key: Option<String>,
    /// `env_files`, read: variable -> value (registered with the run's redactor).
    pub secrets: BTreeMap<String, String>,
}

pub fn unit_name(service: &str) -> String {
    format!("mp-svc-{service}")
}

pub fn service_dir(service: &str) -> String {
    format!("{SERVICES_DIR}/{service}")
}

pub fn env_file(service: &str) -> String {
    format!("{ENV_DIR}/{service}.env")
}

pub fn unit_path(service: &str) -> String {
    format!("/etc/systemd/system/{}.service", unit_name(service))
}

/// Where the control node uploads a release archive: content-addressed, like the agent.
pub fn archive_path(is_root: bool, service: &str, sha256: &str) -> String {
    let dir = if is_root {
        format!("{STATE_DIR}/services")
    } else {
        ".mp-remote/services".to_string()
    };
    format!("{dir}/{service}-{}.tar", &sha256[..16.min(sha256.len())])
}

/// The services `host` runs, in start order.
pub fn services_on<'a>(host: &Host, services: &'a [UserService]) -> Vec<&'a UserService> {
    services.iter().filter(|s| s.runs_on(&host.name)).collect()
}

fn step_id(service: &str, what: &str) -> String {
    format!("start.svc.{service}.{what}")
}

/// The plan of `host`'s user services (None: it runs none).
pub fn services_plan(
    host: &Host,
    facts: &Facts,
    services: &[UserService],
    prepared: &BTreeMap<String, Prepared>,
    run_id: &str,
    check_only: bool,
) -> Result<Option<HostPlan>, PlanError> {
    let mine = services_on(host, services);
    if mine.is_empty() {
        return Ok(None);
    }
    if facts.init != Init::Systemd {
        return Err(PlanError::Stack {
            host: host.name.clone(),
            message: format!(
                "[services.{}] needs systemd on the host: user services do not run under the agent's own supervisor yet",
                mine[0].name
            ),
        });
    }
    let mut steps = Vec::new();
    if mine.iter().any(|s| s.kind == ServiceKind::Python) {
        steps.push(Step {
            id: "start.svc.python".into(),
            title: format!("{} for Python services", PYTHON_PACKAGES.join(", ")),
            action: Action::Packages {
                packages: PYTHON_PACKAGES.iter().map(|p| p.to_string()).collect(),
            },
            notify: vec![],
        });
    }
    for service in mine {
        let ready = prepared
            .get(&service.name)
            .ok_or_else(|| PlanError::Stack {
                host: host.name.clone(),
                message: format!(
                    "[services.{}] was not packed before planning (a bug: please report it)",
                    service.name
                ),
            })?;
        steps.extend(service_steps(service, ready, services));
    }
    Ok(Some(HostPlan::one_layer(
        &host.name,
        run_id,
        STATE_DIR,
        check_only,
        LayerName::Start,
        steps,
    )))
}

/// One service's steps, from its account to its health.
fn service_steps(s: &UserService, ready: &Prepared, all: &[UserService]) -> Vec<Step> {
    let name = s.name.as_str();
    let dir = service_dir(name);
    let unit = unit_name(name);
    let service_id = step_id(name, "service");
    let notify = vec![service_id.clone()];
    let id = &ready.sha256[..16.min(ready.sha256.len())];
    let mut steps = vec![Step {
        id: step_id(name, "user"),
        title: format!("system user {} for service {name}", s.user),
        action: Action::SystemUser {
            name: s.user.clone(),
            home: dir.clone(),
        },
        notify: vec![],
    }];
    let program = s.command[0]
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    for port in &s.ports {
        steps.push(Step {
            id: step_id(name, &format!("port-{port}")),
            title: format!("port {port} (service {name}) free or ours"),
            action: Action::PortFree {
                port: *port,
                service: format!("service {name}"),
                allowed_processes: vec![program.clone(), "python3".into()],
                our_unit: Some(unit.clone()),
            },
            notify: vec![],
        });
    }
    steps.push(Step {
        id: step_id(name, "release"),
        title: format!("release {id} of service {name} in {dir}"),
        action: Action::ServiceRelease {
            dir: dir.clone(),
            archive: ready.archive.clone(),
            sha256: ready.sha256.clone(),
        },
        notify: notify.clone(),
    });
    if let (ServiceKind::Python, Some(key)) = (s.kind, &ready.venv_key) {
        let release = format!("{dir}/releases/{id}");
        steps.push(Step {
            id: step_id(name, "venv"),
            title: format!(
                "venv of service {name}{}",
                if s.wheelhouse.is_some() {
                    " (from its wheelhouse, --no-index)"
                } else {
                    ""
                }
            ),
            action: Action::Venv {
                service: name.to_string(),
                dir: dir.clone(),
                key: key.clone(),
                requirements: s.requirements.as_ref().map(|r| format!("{release}/{r}")),
                find_links: s.wheelhouse.as_ref().map(|w| format!("{release}/{w}")),
            },
            notify: notify.clone(),
        });
    }
    steps.push(Step {
        id: step_id(name, "env"),
        title: format!("environment file {} (secrets, 0600)", env_file(name)),
        action: Action::File {
            path: env_file(name),
            content: env_file_content(&ready.secrets),
            mode: 0o600,
            owner: None,
        },
        notify: notify.clone(),
    });
    steps.push(Step {
        id: step_id(name, "unit"),
        title: format!("systemd unit {}", unit_path(name)),
        action: Action::File {
            path: unit_path(name),
            content: unit_file(s, all),
            mode: 0o644,
            owner: None,
        },
        notify: notify.clone(),
    });
    steps.extend(running_steps(s));
    steps
}

/// The service enabled and running (restarted when a step before it changed something), then
/// healthy.
fn running_steps(s: &UserService) -> Vec<Step> {
    let name = s.name.as_str();
    let unit = unit_name(name);
    let mut steps = vec![Step {
        id: step_id(name, "service"),
        title: format!("service {name} ({unit}) enabled and running"),
        action: Action::Service { unit: unit.clone() },
        notify: vec![],
    }];
    if let Some(health) = &s.health {
        let timeout_secs = health.timeout.as_secs().max(1);
        let (title, action) = match &health.probe {
            ServiceProbe::Http { url, json } => (
                format!("service {name} healthy ({url})"),
                Action::WaitHttp {
                    url: url.clone(),
                    expect_json: json.as_ref().map(|(field, equals)| JsonExpectation {
                        field: field.clone(),
                        equals: equals.clone(),
                    }),
                    timeout_secs,
                    log_unit: Some(unit.clone()),
                },
            ),
            ServiceProbe::Tcp { port } => (
                format!("service {name} accepts connections on port {port}"),
                Action::WaitTcp {
                    port: *port,
                    timeout_secs,
                    log_unit: Some(unit.clone()),
                },
            ),
        };
        steps.push(Step {
            id: step_id(name, "health"),
            title,
            action,
            notify: vec![],
        });
    }
    steps
}

/// A failed batch's automatic rollback on `host`: each service of `rolled` (its name, and
/// whether this run changed its venv too) switched back to the release it ran before,
/// restarted on it, and healthy again.
pub fn rollback_plan(
    host: &Host,
    services: &[UserService],
    rolled: &[(String, bool)],
    run_id: &str,
) -> HostPlan {
    let mut steps = Vec::new();
    for s in services_on(host, services) {
        let Some((_, venv)) = rolled.iter().find(|(name, _)| *name == s.name) else {
            continue;
        };
        let name = s.name.as_str();
        steps.push(Step {
            id: step_id(name, "rollback"),
            title: format!("roll back service {name} to its previous release"),
            action: Action::ServiceRollback {
                dir: service_dir(name),
                venv: *venv,
            },
            notify: vec![step_id(name, "service")],
        });
        steps.extend(running_steps(s));
    }
    HostPlan::one_layer(
        &host.name,
        run_id,
        STATE_DIR,
        false,
        LayerName::Start,
        steps,
    )
}

/// The services whose release (or venv) the steps of this run changed: what a rollback
/// switches back, with whether the venv changed too.
pub fn changed_releases(steps: &[crate::agent::StepEnd]) -> Vec<(String, bool)> {
    let changed = |name: &str, what: &str| {
        steps
            .iter()
            .any(|e| e.step == step_id(name, what) && e.status == crate::agent::StepStatus::Changed)
    };
    let mut names: Vec<String> = steps
        .iter()
        .filter_map(|e| e.step.strip_prefix("start.svc.")?.strip_suffix(".release"))
        .map(str::to_string)
        .collect();
    names.dedup();
    names
        .into_iter()
        .filter(|n| changed(n, "release"))
        .map(|n| {
            let venv = changed(&n, "venv");
            (n, venv)
        })
        .collect()
}

/// `KEY="value"` lines systemd reads with `EnvironmentFile=`.
fn env_file_content(secrets: &BTreeMap<String, String>) -> String {
    let mut body = String::new();
    for (key, value) in secrets {
        body.push_str(&format!("{key}=\"{}\"\n", escape(value)));
    }
    with_marker(CommentStyle::Hash, &body)
}

/// Backslash and double quote escaped, for a double-quoted systemd value.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// One argument of a unit's command line or `Environment=`: `%` and `$` are systemd's
/// specifiers and variables, so they are doubled; anything with spaces or quotes is quoted.
fn unit_word(word: &str) -> String {
    let word = word.replace('%', "%%").replace('$', "$$");
    if word.is_empty() || word.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        format!("\"{}\"", escape(&word))
    } else {
        word
    }
}

/// The command line systemd runs: `python`/`python3` is the venv's; a relative path is
/// inside the current release.
pub fn exec_start(s: &UserService) -> Vec<String> {
    let dir = service_dir(&s.name);
    let first = &s.command[0];
    let program = if s.kind == ServiceKind::Python && (first == "python" || first == "python3") {
        format!("{dir}/venv/bin/python")
    } else if first.starts_with('/') {
        first.clone()
    } else if first.contains('/') || s.kind == ServiceKind::Binary {
        format!("{dir}/current/{first}")
    } else {
        // A console script the requirements installed (`gunicorn`, …).
        format!("{dir}/venv/bin/{first}")
    };
    std::iter::once(program)
        .chain(s.command[1..].iter().cloned())
        .collect()
}

/// The systemd unit: the account, the release as working directory, the venv first on PATH,
/// the env and the secrets' file, always restarted, after what `after` names.
pub fn unit_file(s: &UserService, all: &[UserService]) -> String {
    let dir = service_dir(&s.name);
    let mut after: Vec<String> = vec!["network-online.target".into()];
    for name in &s.after {
        if let Some(c) = component::by_name(name) {
            after.push(format!("{}.service", c.unit));
        } else if all.iter().any(|o| &o.name == name) {
            after.push(format!("{}.service", unit_name(name)));
        }
    }
    let mut text = format!(
        "[Unit]\nDescription=MarketPrism user service {name} (mp-remote)\nAfter={after}\nWants=network-online.target\n\n[Service]\nType=simple\nUser={user}\nGroup={user}\nWorkingDirectory={dir}/current\n",
        name = s.name,
        after = after.join(" "),
        user = s.user,
    );
    let mut env: Vec<(String, String)> = Vec::new();
    if s.kind == ServiceKind::Python {
        env.push((
            "PATH".into(),
            format!("{dir}/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        ));
        env.push(("VIRTUAL_ENV".into(), format!("{dir}/venv")));
        // Output reaches the journal as it is written, not at exit.
        env.push(("PYTHONUNBUFFERED".into(), "1".into()));
    }
    env.extend(s.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    for (key, value) in env {
        text.push_str(&format!(
            "Environment={}\n",
            unit_word(&format!("{key}={value}"))
        ));
    }
    text.push_str(&format!("EnvironmentFile={}\n", env_file(&s.name)));
    let exec: Vec<String> = exec_start(s).iter().map(|w| unit_word(w)).collect();
    text.push_str(&format!(
        "ExecStart={}\nRestart=always\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n",
        exec.join(" ")
    ));
    with_marker(CommentStyle::Hash, &text)
}

#[cfg(test)]
#[path = "services_tests.rs"]
mod tests;
