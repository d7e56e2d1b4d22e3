//! ClickHouse in a host's servers plan: its install steps ([`super::install`]), then its init
//! steps: the data directory, the pipeline user's password, the listen and users overrides,
//! the service, its health and the schema. Hooked into [`super::COMPONENT`] as [`PLAN`].

use crate::facts::Facts;
use crate::plan::build::{Fleet, PlanError, CLICKHOUSE_SECRET_PATH, CLICKHOUSE_USER};
use crate::plan::components::Source;
use crate::plan::model::{Action, Step};
use crate::plan::service::{service_steps, Server};
use crate::plan::vendor::{VendorContext, VendorPlan, VendorSteps};

use super::install::clickhouse_install;
use super::{ClickHouseVersion, ListenConfigInput, UsersConfigInput, COMPONENT as CLICKHOUSE};

pub const PLAN: VendorPlan = VendorPlan {
    // `ss` shows the first 15 characters of a process name.
    process: "clickhouse-serv",
    settings: &[],
    check_source: super::install::check_source,
    steps,
    elsewhere: |_: &Fleet| Vec::new(),
};

/// The step running the server: what its files and binary notify.
const SERVICE_STEP: &str = "init.clickhouse.service";

fn steps(ctx: &VendorContext) -> Result<VendorSteps, PlanError> {
    let (install, server) = clickhouse_install(ctx.host, ctx.facts, ctx.source, SERVICE_STEP)?;
    let version = version_for_configs(ctx.facts, ctx.source);
    let init = init_steps(ctx, &version, server)?;
    Ok(VendorSteps { install, init })
}

/// The version the configs are rendered for: the one the install layer puts in place (a
/// pinned release or push), else the installed one, else what the OS package will bring
/// (Debian 12: 18.16). The schema itself is rendered by the agent for the version the
/// running server reports.
fn version_for_configs(facts: &Facts, source: &Source) -> ClickHouseVersion {
    let pinned = match source {
        Source::Release { version, .. } => Some(version.as_deref().unwrap_or(super::PINNED)),
        Source::Push { version, .. } => version.as_deref(),
        Source::Os {} => None,
    };
    let known = pinned
        .or(facts.installed.clickhouse_server.as_deref())
        .and_then(|v| ClickHouseVersion::parse(v.trim_start_matches('v')).ok());
    known.unwrap_or_else(|| ClickHouseVersion::parse("18.16.1").expect("a valid version literal"))
}

fn init_steps(
    ctx: &VendorContext,
    version: &ClickHouseVersion,
    server_binary: &str,
) -> Result<Vec<Step>, PlanError> {
    let (host, facts, fleet) = (ctx.host, ctx.facts, ctx.fleet);
    let listen = super::listen_config(
        version,
        &ListenConfigInput::loopback_and(&host.private_address),
    )
    .map_err(|e| ctx.stack_error(e))?;
    let mut user = UsersConfigInput::marketprism(fleet.clickhouse_password.clone());
    for address in &fleet.storage_addresses {
        user.allow(address);
    }
    let users = super::users_config(version, &user).map_err(|e| ctx.stack_error(e))?;
    // users.d holds the password hash: readable by the server's group only.
    let file = |id: &str, path: String, content: String, mode: u32, notify: bool| Step {
        id: id.into(),
        title: format!("render {path}"),
        action: Action::File {
            owner: (mode == 0o640).then(|| "root:clickhouse".to_string()),
            path,
            content,
            mode,
        },
        notify: if notify {
            vec![SERVICE_STEP.into()]
        } else {
            vec![]
        },
    };
    let mut steps = vec![
        // A reinstall over a surviving `clickhouse` user does not recreate it: make sure.
        Step {
            id: "init.clickhouse.data-dir".into(),
            title: "ClickHouse data /var/lib/clickhouse".into(),
            action: Action::Directory {
                path: super::DATA_DIR.into(),
                owner: Some("clickhouse".into()),
                mode: 0o750,
            },
            notify: vec![],
        },
        file(
            "init.clickhouse.secret",
            CLICKHOUSE_SECRET_PATH.into(),
            format!("{}\n", fleet.clickhouse_password),
            0o600,
            false,
        ),
        file(
            "init.clickhouse.listen",
            format!("/etc/clickhouse-server/{}", listen.name),
            listen.text,
            0o644,
            true,
        ),
        file(
            "init.clickhouse.users",
            format!("/etc/clickhouse-server/{}", users.name),
            users.text,
            0o640,
            true,
        ),
    ];
    // The package's unit already runs this command line: no drop-in.
    let server = Server {
        step_id: SERVICE_STEP,
        name: CLICKHOUSE.unit,
        user: CLICKHOUSE.accounts[0].name,
        command: &[server_binary, "--config=/etc/clickhouse-server/config.xml"],
        drop_in_step: None,
    };
    steps.extend(service_steps(facts.init, &server, &steps));
    steps.extend([
        Step {
            id: "init.clickhouse.health".into(),
            title: "ClickHouse /ping".into(),
            action: Action::WaitHttp {
                url: CLICKHOUSE.health_url().unwrap_or_default(),
                expect_json: None,
                timeout_secs: CLICKHOUSE.health_deadline.as_secs(),
                log_unit: Some(CLICKHOUSE.unit.into()),
            },
            notify: vec![],
        },
        Step {
            id: "init.clickhouse.schema".into(),
            title: "schema marketprism_hot (8 tables)".into(),
            action: Action::ClickHouseSchema {
                url: format!("http://127.0.0.1:{}/", CLICKHOUSE.port("http")),
                user: CLICKHOUSE_USER.into(),
                password: Some(fleet.clickhouse_password.clone()),
            },
            notify: vec![],
        },
    ]);
    Ok(steps)
}
