//! The user's services in a run (`[services.*]`): packed and read on the control node before
//! any host is touched (a missing secret file stops the deploy there), then, once the
//! pipeline is up, each host's archives uploaded (content-addressed, skipped when already
//! there) and its services' plan run by the agent.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::deploy::{absorb, run, HostDeploy};
use super::phases::{Ctx, Ready};
use super::session::{self, Connected};
use crate::inventory::{Host, ServiceKind, UserService};
use crate::plan::services::{
    archive_path, changed_releases, rollback_plan, services_on, services_plan, Prepared,
};
use crate::plan::Action;
use crate::report::{HostStatus, Redactor};

/// One service as the control node prepared it.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub name: String,
    pub archive: Arc<Vec<u8>>,
    pub sha256: String,
    pub venv_key: Option<String>,
    pub secrets: BTreeMap<String, String>,
}

impl Bundle {
    fn prepared(&self, is_root: bool) -> Prepared {
        Prepared {
            sha256: self.sha256.clone(),
            archive: archive_path(is_root, &self.name, &self.sha256),
            venv_key: self.venv_key.clone(),
            secrets: self.secrets.clone(),
        }
    }
}

/// Packs the services the selected hosts run and reads their secrets, registering each with
/// the run's redactor before any event can carry it.
pub fn prepare(
    services: &[UserService],
    selected: &[&Host],
    redactor: &Redactor,
) -> anyhow::Result<Vec<Bundle>> {
    let mut bundles = Vec::new();
    for s in services
        .iter()
        .filter(|s| selected.iter().any(|h| s.runs_on(&h.name)))
    {
        let archive = super::pack::pack(&s.path)
            .with_context(|| format!("[services.{}]: cannot pack {}", s.name, s.path.display()))?;
        let sha256 = hex::encode(Sha256::digest(&archive));
        let mut secrets = BTreeMap::new();
        for (key, file) in &s.env_files {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!(
                    "[services.{}] env_files {key}: cannot read {}",
                    s.name,
                    file.display()
                )
            })?;
            let value = text.trim_end_matches(['\n', '\r']).to_string();
            redactor.register(&value);
            secrets.insert(key.clone(), value);
        }
        bundles.push(Bundle {
            name: s.name.clone(),
            archive: Arc::new(archive),
            sha256,
            venv_key: venv_key(s)?,
            secrets,
        });
    }
    Ok(bundles)
}

/// `NATS_USER`, `NATS_PASSWORD` and `NATS_INBOX_PREFIX` of the service's NATS user (`nats_user`, default
/// `services`), in the env file with the other secrets, unless the service sets either itself
/// (its own env or env_files win).
fn add_nats_login(
    secrets: &mut BTreeMap<String, String>,
    s: &UserService,
    nats: &crate::stack::nats::NatsCredentials,
) {
    let user = s.nats_user;
    let own = |k: &str| s.env.contains_key(k) || s.env_files.contains_key(k);
    if own("NATS_USER") || own("NATS_PASSWORD") {
        return;
    }
    secrets.insert("NATS_USER".into(), user.name().into());
    secrets.insert("NATS_PASSWORD".into(), nats.password(user));
    // The reply subjects its permissions allow (`collector` and `storage` read only their own).
    secrets.insert("NATS_INBOX_PREFIX".into(), user.inbox_prefix());
}

/// `NATS_URL`: every NATS node's client URL, comma-separated (what nats.py and the NATS CLI
/// take), unless the service sets its own. NATS listens on loopback only when the inventory has
/// one host, so `nats://127.0.0.1:4222` is not a URL that works everywhere.
fn add_nats_url(
    secrets: &mut BTreeMap<String, String>,
    s: &UserService,
    nodes: &[(String, String)],
) {
    if s.env.contains_key("NATS_URL") || s.env_files.contains_key("NATS_URL") {
        return;
    }
    let urls: Vec<String> = nodes
        .iter()
        .map(|(_, address)| crate::stack::nats::COMPONENT.endpoint(address))
        .collect();
    secrets.insert("NATS_URL".into(), urls.join(","));
}

/// What decides a venv: the requirements' bytes and where pip gets them (the index, or the
/// wheelhouse's wheels by name). The code of the service is not part of it.
fn venv_key(s: &UserService) -> anyhow::Result<Option<String>> {
    if s.kind != ServiceKind::Python {
        return Ok(None);
    }
    let mut hasher = Sha256::new();
    if let Some(r) = &s.requirements {
        let path = s.path.join(r);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("[services.{}]: cannot read {}", s.name, path.display()))?;
        hasher.update(&bytes);
    }
    match &s.wheelhouse {
        None => hasher.update(b"\0source=index"),
        Some(w) => {
            hasher.update(b"\0source=wheelhouse");
            let dir = s.path.join(w);
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .with_context(|| format!("[services.{}]: cannot read {}", s.name, dir.display()))?
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                hasher.update(b"\0");
                hasher.update(name.as_bytes());
            }
        }
    }
    Ok(Some(hex::encode(hasher.finalize())))
}

/// After the pipeline: on each ready host among `names` that runs a user service and is
/// fine so far, upload its archives and run its services' plan.
pub(in crate::run) async fn services_phase(
    ctx: &Ctx<'_, '_>,
    names: &[String],
    bundles: &[Bundle],
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let services = &ctx.inventory.services;
    let hosts: Vec<Ready> = ctx
        .ready_among(names)
        .into_iter()
        .filter(|r| !services_on(r.c.host, services).is_empty())
        .filter(|r| results.get(&r.c.host.name).map(|e| e.status) == Some(HostStatus::Ok))
        .collect();
    let connections: Vec<Connected> = hosts.iter().map(|r| r.c.clone()).collect();
    let options = ctx.options;
    let outcomes = session::on_each(&connections, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        async move {
            let mut prepared = BTreeMap::new();
            for s in services_on(c.host, services) {
                let bundle = bundles
                    .iter()
                    .find(|b| b.name == s.name)
                    .context("a service was not packed (a bug: please report it)")?;
                let mut ready = bundle.prepared(r.facts.is_root);
                if !ctx.fleet.nats_nodes.is_empty() {
                    add_nats_login(&mut ready.secrets, s, &ctx.fleet.nats);
                    add_nats_url(&mut ready.secrets, s, &ctx.fleet.nats_nodes);
                    if ctx.fleet.nats_tls.is_some() {
                        // Written on every host of the fleet by the servers phase.
                        ready.secrets.insert(
                            "NATS_CA_FILE".into(),
                            crate::stack::nats::TLS_CA_FILE.into(),
                        );
                    }
                }
                if !options.check_only {
                    c.transport
                        .upload(&bundle.archive, &ready.archive, 0o600)
                        .await
                        .with_context(|| {
                            format!("cannot upload the release of [services.{}]", s.name)
                        })?;
                }
                prepared.insert(s.name.clone(), ready);
            }
            let plan = services_plan(
                c.host,
                &r.facts,
                services,
                &prepared,
                &ctx.run_id,
                options.check_only,
            )?;
            match plan {
                Some(mut plan) => {
                    if options.update {
                        // `update` installs nothing: Python must be there already (the venv
                        // step says so if it is not).
                        for layer in &mut plan.layers {
                            layer
                                .steps
                                .retain(|s| !matches!(s.action, Action::Packages { .. }));
                        }
                    }
                    run(&c, &r.agent_path, &plan, ctx.progress, ctx.options.diff).await
                }
                None => Ok(Vec::new()),
            }
        }
    })
    .await;
    for (c, (took, result)) in connections.iter().zip(outcomes) {
        let entry = results.get_mut(&c.host.name).expect("phase 1 recorded it");
        absorb(entry, took, result);
    }
}

/// A failed batch's hosts among `names` switched back to the user-service releases they ran
/// before this run (`plan::services::rollback_plan`), each restarted and healthy again.
pub(in crate::run) async fn rollback_services(
    ctx: &Ctx<'_, '_>,
    names: &[String],
    results: &mut BTreeMap<String, HostDeploy>,
) {
    let rolled: BTreeMap<String, Vec<(String, bool)>> = names
        .iter()
        .filter_map(|n| {
            let changed = changed_releases(&results.get(n)?.steps);
            (!changed.is_empty()).then(|| (n.clone(), changed))
        })
        .collect();
    let hosts: Vec<Ready> = ctx
        .ready_among(names)
        .into_iter()
        .filter(|r| rolled.contains_key(&r.c.host.name))
        .collect();
    let connections: Vec<Connected> = hosts.iter().map(|r| r.c.clone()).collect();
    let outcomes = session::on_each(&connections, ctx.fanout.forks, |c| {
        let r = ctx.ready(&c.host.name).expect("every ready host has facts");
        let plan = rollback_plan(
            c.host,
            &ctx.inventory.services,
            &rolled[&c.host.name],
            &ctx.run_id,
        );
        async move { run(&c, &r.agent_path, &plan, ctx.progress, false).await }
    })
    .await;
    for (c, (took, result)) in connections.iter().zip(outcomes) {
        if let Some(entry) = results.get_mut(&c.host.name) {
            absorb(entry, took, result);
        }
    }
}
