//! NATS in a host's servers plan: its install steps ([`super::install`]), then its init
//! steps: the TLS files (`[components.nats] tls`: the CA, the certificate and its key, each
//! restarting the server when it changes), the secrets, the JetStream store, the config, the
//! service and its health. A host without NATS gets the TLS CA alone, for its clients. Hooked
//! into [`super::COMPONENT`] as [`PLAN`].

use crate::plan::build::{Fleet, PlanError};
use crate::plan::components::Components;
use crate::plan::model::{Action, JsonExpectation, Step};
use crate::plan::service::{service_steps, Server};
use crate::plan::vendor::{Setting, VendorContext, VendorPlan, VendorSteps};

use super::install::{nats_install, NatsRun};
use super::{
    NatsConfigInput, NatsTlsFiles, NatsTlsPaths, COMPONENT as NATS, CONFIG_FILE as NATS_CONFIG,
    TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE,
};

pub const PLAN: VendorPlan = VendorPlan {
    process: "nats-server",
    settings: &[Setting {
        key: "tls",
        check: |value| tls_paths_of(value).map(|_| ()),
    }],
    check_source: super::install::check_source,
    steps,
    elsewhere,
};

/// The step running the server: what its files and binary notify.
pub(crate) const SERVICE_STEP: &str = "init.nats.service";

/// The drop-in pointing the package's unit at our config.
const DROP_IN_STEP: &str = "install.nats.drop-in";

fn steps(ctx: &VendorContext) -> Result<VendorSteps, PlanError> {
    let (mut install, run) =
        nats_install(ctx.host, ctx.facts, ctx.source, SERVICE_STEP, NATS_CONFIG)?;
    let mut init = init_steps(ctx, run)?;
    // The drop-in goes in before the package: the package's own daemon-reload loads it, so
    // the start needs none. On a fresh 10-host fleet that reload took 0.3 to 0.7 s, between
    // the last host's install and the cluster's start.
    if let Some(at) = init.iter().position(|s| s.id == DROP_IN_STEP) {
        install.insert(0, init.remove(at));
    }
    Ok(VendorSteps { install, init })
}

/// `[components.nats] tls = { cert, key, ca }`: NATS clients and routes speak TLS.
pub fn tls_paths(components: &Components) -> Option<NatsTlsPaths> {
    // Checked when the table was read ([`PLAN`]'s settings): a value here parses.
    components
        .setting(NATS.name, "tls")
        .and_then(|value| tls_paths_of(value).ok())
}

fn tls_paths_of(value: &toml::Value) -> Result<NatsTlsPaths, String> {
    value
        .clone()
        .try_into::<NatsTlsPaths>()
        .map_err(|e| format!("{e}; write tls = {{ cert = \"...\", key = \"...\", ca = \"...\" }}"))
}

/// Every NATS client on a host without NATS (pipeline or user service) trusts the same CA.
fn elsewhere(fleet: &Fleet) -> Vec<Step> {
    fleet
        .nats_tls
        .iter()
        .map(|tls| ca_step(tls, None))
        .collect()
}

/// `run`: how the install layer's server runs (the package's unit gets a drop-in; a release
/// brought its own unit, written by the install layer).
fn init_steps(ctx: &VendorContext, run: NatsRun) -> Result<Vec<Step>, PlanError> {
    let (host, facts, fleet) = (ctx.host, ctx.facts, ctx.fleet);
    let all: Vec<String> = fleet.nats_nodes.iter().map(|(_, a)| a.clone()).collect();
    let mut input = NatsConfigInput::new(host.name.clone());
    // The JetStream store's size cap, when the host's vars set one.
    if host.vars.contains_key("nats_max_store_gib") {
        let gib = crate::plan::pipeline::positive_var(host, "nats_max_store_gib", 10, "GiB")?;
        input.max_file_store_bytes = u64::from(gib) << 30;
    }
    input.routes = if all.len() > 1 {
        super::peer_addresses(&host.private_address, &all)
    } else {
        Vec::new()
    };
    input.credentials = Some(fleet.nats.clone());
    input.tls = fleet.nats_tls.is_some();
    let listen = super::listen_address(&host.private_address, &facts.addresses, fleet.one_host);
    input.listen = listen.address.clone();
    let config = super::render_config(&input).map_err(|e| ctx.stack_error(e))?;
    let secret = |id: &str, path: &str, content: String| Step {
        id: id.into(),
        title: format!("render {path}"),
        action: Action::File {
            path: path.into(),
            content: format!("{content}\n"),
            mode: 0o600,
            owner: None,
        },
        notify: vec![],
    };
    let mut steps = Vec::new();
    if let Some(tls) = &fleet.nats_tls {
        steps.extend(tls_steps(tls, SERVICE_STEP));
    }
    steps.extend([
        // Kept for the next deploy, which derives the same passwords from it.
        secret(
            "init.nats.secret",
            super::SECRET_FILE,
            fleet.nats.secret().to_string(),
        ),
        // How the agent on this host logs in (streams, replica checks).
        secret(
            "init.nats.admin-password",
            super::ADMIN_PASSWORD_FILE,
            fleet.nats.password(super::NatsUser::Admin),
        ),
        Step {
            id: "init.nats.store-dir".into(),
            title: format!("JetStream store {}", input.store_dir),
            action: Action::Directory {
                path: input.store_dir.clone(),
                owner: Some("nats".into()),
                mode: 0o750,
            },
            notify: vec![],
        },
        Step {
            id: "init.nats.config".into(),
            title: format!(
                "render {NATS_CONFIG} (listening on {}: {})",
                listen.address, listen.why
            ),
            // It holds the users' passwords: readable by the server's group only.
            action: Action::File {
                path: NATS_CONFIG.into(),
                content: config.text,
                mode: 0o640,
                owner: Some("root:nats".into()),
            },
            notify: vec![SERVICE_STEP.into()],
        },
    ]);
    // A drop-in points the package's own unit at our config: the package's files stay untouched.
    let server = Server {
        step_id: SERVICE_STEP,
        name: NATS.unit,
        user: NATS.accounts[0].name,
        command: &[run.binary, "-c", NATS_CONFIG],
        drop_in_step: run.package_unit.then_some(DROP_IN_STEP),
    };
    steps.extend(service_steps(facts.init, &server, &steps));
    steps.push(Step {
        id: "init.nats.health".into(),
        // Up with JetStream on. Full health (a meta leader) needs the other nodes too: it is
        // checked after the barrier, before the streams.
        title: "NATS /healthz (JetStream enabled)".into(),
        action: nats_healthz("?js-enabled-only=true"),
        notify: vec![],
    });
    Ok(steps)
}

/// The certificate, its key (readable by the server's account only) and the CA, each
/// restarting the server when it changes.
fn tls_steps(tls: &NatsTlsFiles, service: &str) -> Vec<Step> {
    let file = |id: &str, path: &str, content: &str, mode: u32, owner: Option<&str>| Step {
        id: id.into(),
        title: format!("TLS {path}"),
        action: Action::File {
            path: path.into(),
            content: content.into(),
            mode,
            owner: owner.map(str::to_string),
        },
        notify: vec![service.into()],
    };
    vec![
        ca_step(tls, Some(service)),
        file(
            "init.nats.tls-cert",
            TLS_CERT_FILE,
            &tls.cert_pem,
            0o644,
            None,
        ),
        file(
            "init.nats.tls-key",
            TLS_KEY_FILE,
            &tls.key_pem,
            0o600,
            Some("nats:nats"),
        ),
    ]
}

/// The CA that signed the NATS certificate, for every client on the host; restarts the
/// server step `notify` names, if any.
fn ca_step(tls: &NatsTlsFiles, notify: Option<&str>) -> Step {
    Step {
        id: "init.nats.tls-ca".into(),
        title: format!("TLS {TLS_CA_FILE}"),
        action: Action::File {
            path: TLS_CA_FILE.into(),
            content: tls.ca_pem.clone(),
            mode: 0o644,
            owner: None,
        },
        notify: notify.into_iter().map(str::to_string).collect(),
    }
}

/// NATS `/healthz` (with `query`) answering `{"status":"ok"}` within 60 s.
pub(crate) fn nats_healthz(query: &str) -> Action {
    Action::WaitHttp {
        url: format!("{}{query}", NATS.health_url().unwrap_or_default()),
        expect_json: Some(JsonExpectation {
            field: "status".into(),
            equals: "ok".into(),
        }),
        timeout_secs: NATS.health_deadline.as_secs(),
        log_unit: Some(NATS.unit.into()),
    }
}
