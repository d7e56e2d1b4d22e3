//! `status`: the state of every service on every host, learned in ONE exec per host (the
//! script below prints raw sections) and interpreted by the pure [`parse`], like `facts`.
//!
//! Output format (`mp_status=1`): `key=value` lines and `--- name ---` ... `--- end name ---`
//! sections, closed by `status_end=ok`. Per service S (`nats`, `clickhouse`, `storage`,
//! `collector`): `S.active` (`systemctl is-active`; without systemd
//! `active`/`restarting`/`inactive` from mp-remote's supervisor's pid files, with
//! `S.manager=supervisor`); for NATS and ClickHouse `S.pkg` (dpkg `Status|Version`), for the
//! pipeline services `S.installed` (`yes` when the release's binary
//! `DEPLOY_DIR/current/mp-remote` and the service's config are there); per HTTP call N: `N.curl`
//! (curl's exit code), `N.code` (HTTP status, `000` when nothing answered) and section N (the
//! body). Calls: `nats.healthz`, `clickhouse.ping`, `storage.health`, `collector.health`; in
//! full mode also `nats.version` (first line of `nats-server --version`), `nats.jsz`,
//! `clickhouse.version`, `clickhouse.tables`, `clickhouse.parts`, `storage.version` and
//! `collector.version` (first line of the release's `mp-remote --version`), and
//! `listen_source` with the `listen` section as in facts.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::day2::{services_of, supervisor_sh, Service};
use super::{for_each_host, FanOut, HostOutcome};
use crate::facts::{listening_ports, normalize_version, PortsSource};
use crate::inventory::{Host, Role};
use crate::report::HostStatus;
use crate::transport::shell::{quote, with_become};

/// The status probe, POSIX sh, fed on stdin: `sh -s -- MODE DEPLOY_DIR SERVICE...`. It
/// reports and never decides; every command reads /dev/null so none eats the script.
pub const SCRIPT: &str = concat!(
    r#"set +e +u 2>/dev/null
PATH="$PATH:/usr/sbin:/sbin"
LC_ALL=C
export PATH LC_ALL
nl='
'
mode=$1
dir=$2
shift 2
section() {
    printf -- '--- %s ---\n' "$1"
    [ -n "$2" ] && printf '%s\n' "$2"
    printf -- '--- end %s ---\n' "$1"
}
# reply NAME CURL_EXIT OUTPUT: OUTPUT is the body, a newline, then the HTTP code (-w).
reply() {
    printf '%s.curl=%s\n%s.code=%s\n' "$1" "$2" "$1" "${3##*"$nl"}"
    section "$1" "${3%"$nl"*}"
}
get() {
    out=$(curl -sS -m 5 -w '\n%{http_code}' "$2" 2>/dev/null </dev/null)
    reply "$1" $? "$out"
}
# The MarketPrism user when its password is readable (root), else the default user.
ch_pw=
[ -r /etc/marketprism/clickhouse-password ] && ch_pw=$(cat /etc/marketprism/clickhouse-password 2>/dev/null </dev/null)
query() {
    if [ -n "$ch_pw" ]; then
        out=$(printf 'user = "marketprism:%s"\n' "$ch_pw" | curl -sS -m 10 -K - -w '\n%{http_code}' --data-binary "$2" http://127.0.0.1:8123/ 2>/dev/null)
    else
        out=$(curl -sS -m 10 -w '\n%{http_code}' --data-binary "$2" http://127.0.0.1:8123/ 2>/dev/null </dev/null)
    fi
    reply "$1" $? "$out"
}
pkg() { dpkg-query -W -f '${Status}|${Version}' "$1" 2>/dev/null </dev/null; }
"#,
    supervisor_sh!(),
    r#"

echo 'mp_status=1'
app_v=
for s in "$@"; do
    case $s in
        nats) unit=nats-server ;;
        clickhouse) unit=clickhouse-server ;;
        storage) unit=mp-storage port=8085 ;;
        collector) unit=mp-collector port=8087 ;;
        *) continue ;;
    esac
    if [ -d /run/systemd/system ]; then
        printf '%s.active=%s\n' "$s" "$(systemctl is-active "$unit" 2>/dev/null </dev/null)"
    elif sv_running "$unit"; then
        printf '%s.active=active\n%s.manager=supervisor\n' "$s" "$s"
    elif [ -n "$p" ]; then
        printf '%s.active=restarting\n%s.manager=supervisor\n' "$s" "$s"
    else
        printf '%s.active=inactive\n%s.manager=supervisor\n' "$s" "$s"
    fi
    case $s in
    nats)
        printf '%s.pkg=%s\n' "$s" "$(pkg "$unit")"
        get nats.healthz http://127.0.0.1:8222/healthz
        if [ "$mode" = full ]; then
            v=
            command -v nats-server >/dev/null 2>&1 && v=$(nats-server --version 2>/dev/null </dev/null | head -n 1)
            printf 'nats.version=%s\n' "${v%%"$nl"*}"
            get nats.jsz 'http://127.0.0.1:8222/jsz?streams=true'
        fi
        ;;
    clickhouse)
        printf '%s.pkg=%s\n' "$s" "$(pkg "$unit")"
        get clickhouse.ping http://127.0.0.1:8123/ping
        if [ "$mode" = full ] && [ "${out##*"$nl"}" = 200 ]; then
            query clickhouse.version 'SELECT version()'
            query clickhouse.tables "SELECT name FROM system.tables WHERE database = 'marketprism_hot' FORMAT JSONEachRow"
            query clickhouse.parts "SELECT table, sum(rows) AS rows FROM system.parts WHERE database = 'marketprism_hot' AND active GROUP BY table FORMAT JSONEachRow"
        fi
        ;;
    *)
        # The pipeline services: mp-remote's own release runs them.
        bin="$dir/current/mp-remote"
        if [ -x "$bin" ] && [ -e "/etc/marketprism/$s.toml" ]; then
            printf '%s.installed=yes\n' "$s"
        else
            printf '%s.installed=no\n' "$s"
        fi
        get "$s.health" "http://127.0.0.1:$port/health"
        if [ "$mode" = full ]; then
            if [ -z "$app_v" ] && [ -x "$bin" ]; then
                app_v=$("$bin" --version 2>/dev/null </dev/null | head -n 1)
            fi
            printf '%s.version=%s\n' "$s" "${app_v%%"$nl"*}"
        fi
        ;;
    esac
done
if [ "$mode" = full ]; then
    if out=$(ss -Htln 2>/dev/null </dev/null); then
        src=ss
    elif out=$(ss -tln 2>/dev/null </dev/null); then
        src=ss
    elif [ -r /proc/net/tcp ]; then
        src=proc
        out=$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
    else
        src=none
        out=
    fi
    printf 'listen_source=%s\n' "$src"
    section listen "$out"
fi
if [ -L "$dir/current" ]; then
    r=$(readlink "$dir/current" 2>/dev/null)
    printf 'release=%s\n' "${r##*/}"
fi
echo 'status_end=ok'
"#
);

/// How much the probe asks: `Health` for polling after a start, `Full` for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Health,
    Full,
}

/// Where the host keeps MarketPrism's releases: its `deploy_dir` var, else deploy's default.
pub fn deploy_dir(host: &Host) -> &str {
    host.vars
        .get("deploy_dir")
        .and_then(|v| v.as_str())
        .unwrap_or(crate::plan::build::DEFAULT_DEPLOY_DIR)
}

/// The remote command that runs [`SCRIPT`] (fed on stdin) for `services`, the pipeline's
/// release under `deploy_dir`; through sudo when `become`, so that the ClickHouse password
/// file is readable.
pub fn command(mode: Mode, services: &[Service], deploy_dir: &str, become_root: bool) -> String {
    let mut line = String::from("sh -s --");
    line.push_str(match mode {
        Mode::Health => " health ",
        Mode::Full => " full ",
    });
    line.push_str(&quote(deploy_dir));
    for s in services {
        line.push(' ');
        line.push_str(s.name());
    }
    with_become(&line, become_root)
}

/// One service as `status --json` shows it. Field names are an API (README).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServiceState {
    pub running: bool,
    pub healthy: bool,
    pub version: Option<String>,
    pub ports: Vec<u16>,
    /// `systemctl is-active` said this (`inactive`, `failed`, ...); empty when unknown. Under
    /// mp-remote's supervisor (no systemd): `active`, `restarting` (the supervisor runs, its
    /// server not) or `inactive` (no supervisor).
    #[serde(skip)]
    pub active: String,
    /// Run by mp-remote's own supervisor, the host having no systemd.
    #[serde(skip)]
    pub supervised: bool,
    #[serde(skip)]
    pub installed: bool,
    /// Why it is not healthy, when it is not.
    #[serde(skip)]
    pub health_error: Option<String>,
}

impl ServiceState {
    /// What is wrong with it and what to do, None when it runs and is healthy.
    pub fn problem(&self) -> Option<String> {
        if !self.running {
            let state = if self.active.is_empty() {
                "unknown"
            } else {
                &self.active
            };
            return Some(if self.supervised {
                format!("not running (mp-remote supervisor: {state})")
            } else {
                format!("not running (systemctl is-active: {state})")
            });
        }
        if !self.healthy {
            return Some(format!(
                "running but not healthy: {}",
                self.health_error.as_deref().unwrap_or("no answer")
            ));
        }
        None
    }
}

/// A stream's state as `status --json` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamState {
    pub messages: u64,
}

/// What the probe found on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostProbe {
    pub services: BTreeMap<Service, ServiceState>,
    /// From NATS `/jsz`; None when NATS is not probed here, Err when jsz did not answer.
    pub streams: Option<Result<BTreeMap<String, StreamState>, String>>,
    /// Rows per table of `marketprism_hot`; None when ClickHouse is not probed here.
    pub tables: Option<Result<BTreeMap<String, u64>, String>>,
    /// The pipeline release `{deploy_dir}/current` points at, when there is one.
    pub release: Option<String>,
}

impl HostProbe {
    /// The state of `service`; not running and not healthy when the probe did not look at it.
    pub fn service(&self, service: Service) -> ServiceState {
        self.services.get(&service).cloned().unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StatusParseError {
    #[error("the status probe printed no `mp_status=1` line (is sh there? is sudo asking for a password?): {head}")]
    NotProbeOutput { head: String },
    #[error("the status probe output stops early (no `status_end=ok`); the host may have cut the session: {head}")]
    Truncated { head: String },
}

/// Parses the output of [`SCRIPT`]. Junk before `mp_status=1` (login banners) is skipped.
pub fn parse(output: &str) -> Result<HostProbe, StatusParseError> {
    let raw = Raw::split(output)?;
    let mut probe = HostProbe::default();
    let ports = match raw.get("listen_source") {
        Some("ss") => listening_ports(PortsSource::Ss, raw.section("listen")),
        Some("proc") => listening_ports(PortsSource::Proc, raw.section("listen")),
        _ => Vec::new(),
    };
    for service in Service::ALL {
        let Some(active) = raw.get(&format!("{service}.active")) else {
            continue;
        };
        let pkg_version = raw
            .get(&format!("{service}.pkg"))
            .and_then(|p| p.strip_prefix("install ok installed|"))
            .and_then(normalize_version);
        let (health, version, installed) = match service {
            Service::Nats => (
                raw.http("nats.healthz")
                    .and_then(|body| nats_healthy(&body)),
                raw.get("nats.version").and_then(normalize_version),
                pkg_version.is_some(),
            ),
            Service::Clickhouse => (
                raw.http("clickhouse.ping")
                    .and_then(|body| match body.trim() {
                        "Ok." => Ok(()),
                        other => Err(format!("/ping answered {other:?}, not \"Ok.\"")),
                    }),
                raw.http("clickhouse.version")
                    .ok()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty()),
                pkg_version.is_some(),
            ),
            Service::Storage | Service::Collector => (
                pipeline_healthy(&raw, &format!("{service}.health")),
                raw.get(&format!("{service}.version"))
                    .and_then(normalize_version),
                raw.get(&format!("{service}.installed")) == Some("yes"),
            ),
        };
        probe.services.insert(
            service,
            ServiceState {
                running: active == "active",
                healthy: active == "active" && health.is_ok(),
                version: version.or_else(|| pkg_version.clone()),
                ports: ports
                    .iter()
                    .copied()
                    .filter(|p| service.ports().contains(p))
                    .collect(),
                active: active.to_string(),
                supervised: raw.get(&format!("{service}.manager")) == Some("supervisor"),
                installed,
                health_error: health.err(),
            },
        );
    }
    if raw.has("nats.jsz") {
        probe.streams = Some(raw.http("nats.jsz").and_then(|body| streams(&body)));
    }
    // Full mode only (it lists ports); the queries are skipped when /ping did not answer.
    if probe.services.contains_key(&Service::Clickhouse) && raw.get("listen_source").is_some() {
        probe.tables = Some(if raw.has("clickhouse.tables") {
            tables(&raw)
        } else {
            Err("ClickHouse did not answer /ping".into())
        });
    }
    probe.release = raw
        .get("release")
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    Ok(probe)
}

/// `/healthz` is healthy when its JSON says `"status": "ok"`, parsed, never substring-matched.
fn nats_healthy(body: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Health {
        status: Option<String>,
        error: Option<String>,
    }
    let health: Health = serde_json::from_str(body)
        .map_err(|e| format!("/healthz is not JSON ({e}): {}", one_line(body)))?;
    match (health.status.as_deref(), health.error) {
        (Some("ok"), _) => Ok(()),
        (status, error) => Err(format!(
            "/healthz status is {:?}{}",
            status.unwrap_or("missing"),
            error.map(|e| format!(": {e}")).unwrap_or_default()
        )),
    }
}

/// A pipeline service's `/health` (call `call`) is healthy when it answered 200 with a JSON
/// object whose `status` is exactly `"healthy"`: parsed, never substring-matched ("unhealthy"
/// contains "healthy"). A `degraded` or `unhealthy` answer (whatever its HTTP code) says so,
/// with the service's `last_error` when it gives one.
fn pipeline_healthy(raw: &Raw, call: &str) -> Result<(), String> {
    let code = raw.get(&format!("{call}.code")).unwrap_or("");
    if code.is_empty() || code == "000" {
        // Nothing answered: curl's reason.
        return Err(raw
            .http(call)
            .err()
            .unwrap_or_else(|| format!("{call}: no answer")));
    }
    let body = raw.section(call);
    let json: serde_json::Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "/health answered HTTP {code}, not JSON ({e}): {}",
            one_line(body)
        )
    })?;
    let status = json.get("status").and_then(serde_json::Value::as_str);
    if status == Some("healthy") {
        return if code == "200" {
            Ok(())
        } else {
            Err(format!("/health says \"healthy\" but answered HTTP {code}"))
        };
    }
    let last_error = match json.get("last_error") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(e)) if e.trim().is_empty() => None,
        Some(serde_json::Value::String(e)) => Some(one_line(e)),
        Some(other) => Some(one_line(&other.to_string())),
    };
    // A live collector names what degrades it (stalled streams, exchanges not connected).
    let source_reasons: Vec<String> = json["source"]["degraded"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_str()).map(one_line).collect())
        .unwrap_or_default();
    let last_error = last_error.or_else(|| match source_reasons.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} (and {} more)", rest.len())),
    });
    Err(format!(
        "/health status is {:?}{}",
        status.unwrap_or("missing"),
        last_error.map(|e| format!(": {e}")).unwrap_or_default()
    ))
}

/// Per stream its message count, from `/jsz?streams=true`.
fn streams(body: &str) -> Result<BTreeMap<String, StreamState>, String> {
    #[derive(Deserialize)]
    struct Jsz {
        #[serde(default)]
        account_details: Vec<Account>,
    }
    #[derive(Deserialize)]
    struct Account {
        #[serde(default)]
        stream_detail: Vec<Detail>,
    }
    #[derive(Deserialize)]
    struct Detail {
        name: String,
        #[serde(default)]
        state: State,
    }
    #[derive(Deserialize, Default)]
    struct State {
        #[serde(default)]
        messages: u64,
    }
    let jsz: Jsz = serde_json::from_str(body)
        .map_err(|e| format!("/jsz is not JSON ({e}): {}", one_line(body)))?;
    Ok(jsz
        .account_details
        .into_iter()
        .flat_map(|a| a.stream_detail)
        .map(|d| {
            (
                d.name,
                StreamState {
                    messages: d.state.messages,
                },
            )
        })
        .collect())
}

/// Every table of `marketprism_hot` with its rows in active parts (0 when it has none).
fn tables(raw: &Raw) -> Result<BTreeMap<String, u64>, String> {
    #[derive(Deserialize)]
    struct Table {
        name: String,
    }
    #[derive(Deserialize)]
    struct Parts {
        table: String,
        /// ClickHouse quotes 64-bit integers in JSON by default.
        rows: serde_json::Value,
    }
    let mut tables = BTreeMap::new();
    for line in raw.http("clickhouse.tables")?.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let t: Table = serde_json::from_str(line)
            .map_err(|e| format!("unexpected table row ({e}): {line}"))?;
        tables.insert(t.name, 0);
    }
    for line in raw.http("clickhouse.parts")?.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let p: Parts = serde_json::from_str(line)
            .map_err(|e| format!("unexpected parts row ({e}): {line}"))?;
        let rows = match &p.rows {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| format!("unexpected row count in {line}"))?;
        tables.insert(p.table, rows);
    }
    Ok(tables)
}

fn one_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    line.chars().take(200).collect()
}

/// The framing-checked keys and sections of the probe output.
struct Raw<'a> {
    keys: HashMap<&'a str, &'a str>,
    sections: HashMap<&'a str, String>,
}

impl<'a> Raw<'a> {
    fn split(output: &'a str) -> Result<Self, StatusParseError> {
        let head = || one_line(output);
        let mut lines = output
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .skip_while(|l| *l != "mp_status=1");
        if lines.next().is_none() {
            return Err(StatusParseError::NotProbeOutput { head: head() });
        }
        let (mut keys, mut sections) = (HashMap::new(), HashMap::new());
        let mut open: Option<(&str, Vec<&str>)> = None;
        for line in lines {
            if let Some((name, body)) = &mut open {
                if line
                    .strip_prefix("--- end ")
                    .and_then(|l| l.strip_suffix(" ---"))
                    == Some(name)
                {
                    sections.insert(*name, body.join("\n"));
                    open = None;
                } else {
                    body.push(line);
                }
            } else if line == "status_end=ok" {
                return Ok(Raw { keys, sections });
            } else if let Some(name) = line
                .strip_prefix("--- ")
                .and_then(|l| l.strip_suffix(" ---"))
            {
                open = Some((name, Vec::new()));
            } else if let Some((key, value)) = line.split_once('=') {
                keys.insert(key, value);
            }
        }
        Err(StatusParseError::Truncated { head: head() })
    }

    fn get(&self, key: &str) -> Option<&'a str> {
        self.keys.get(key).copied()
    }

    fn has(&self, call: &str) -> bool {
        self.keys.contains_key(format!("{call}.code").as_str())
    }

    fn section(&self, name: &str) -> &str {
        self.sections.get(name).map(String::as_str).unwrap_or("")
    }

    /// The body of HTTP call `name` when it answered 200, else what went wrong.
    fn http(&self, name: &str) -> Result<String, String> {
        let body = self.section(name);
        match (
            self.get(&format!("{name}.curl")),
            self.get(&format!("{name}.code")),
        ) {
            (_, Some("200")) => Ok(body.to_string()),
            (None, None) => Err(format!("{name} was not asked")),
            (Some("7"), _) => Err(format!("{name}: connection refused")),
            (Some("28"), _) => Err(format!("{name}: no answer in time")),
            (_, Some(code)) if code != "000" && !code.is_empty() => {
                Err(format!("{name}: HTTP {code}: {}", one_line(body)))
            }
            (curl, _) => Err(format!(
                "{name}: no answer (curl exit {})",
                curl.unwrap_or("?")
            )),
        }
    }
}

/// Probes every service of every host (by its roles) in one exec per host. A host with a
/// service not running or not healthy ends `failed`, naming each and what to do. Streams are
/// kept on the first NATS host that answered `/jsz` (the cluster's view), cleared elsewhere.
pub async fn gather(hosts: &[&Host], fanout: &FanOut) -> Vec<HostOutcome<HostProbe>> {
    let mut outcomes = for_each_host(hosts, fanout, |transport, host| async move {
        let services = services_of(host, None);
        let output = transport
            .exec(
                &command(Mode::Full, &services, deploy_dir(host), host.become_),
                SCRIPT.as_bytes(),
            )
            .await?;
        let probe = parse(&output.stdout_text()).map_err(|e| {
            anyhow::anyhow!(
                "{e} (exit {:?}; stderr: {})",
                output.status,
                one_line(&output.stderr_text())
            )
        })?;
        Ok(probe)
    })
    .await;
    let shown = stream_host(
        &outcomes
            .iter()
            .zip(hosts)
            .map(|(o, h)| (h.has_role(Role::Nats), o.value.as_ref()))
            .collect::<Vec<_>>(),
    );
    for (index, (outcome, host)) in outcomes.iter_mut().zip(hosts).enumerate() {
        let Some(probe) = &mut outcome.value else {
            continue;
        };
        if Some(index) != shown {
            probe.streams = None;
        }
        let problems: Vec<String> = probe
            .services
            .iter()
            .filter_map(|(service, state)| {
                state.problem().map(|p| problem_line(*service, state, &p))
            })
            .collect();
        if !problems.is_empty() {
            outcome.status = HostStatus::Failed;
            outcome.error = Some(format!("{}: {}", host.name, problems.join("; ")));
        }
    }
    outcomes
}

/// Which host speaks for the cluster's streams: the first NATS host whose /jsz answered, else
/// the first reached NATS host (to show why not); None without one.
fn stream_host(hosts: &[(bool, Option<&HostProbe>)]) -> Option<usize> {
    let reached = || {
        hosts
            .iter()
            .enumerate()
            .filter_map(|(i, (nats, probe))| (*nats).then_some((i, (*probe)?)))
    };
    reached()
        .find(|(_, p)| matches!(p.streams, Some(Ok(_))))
        .or_else(|| reached().next())
        .map(|(i, _)| i)
}

fn problem_line(service: Service, state: &ServiceState, problem: &str) -> String {
    let unit = service.unit();
    if !state.installed && !state.running {
        return format!("{unit} is not installed: run `mp-remote deploy`");
    }
    let todo = if !state.running && state.supervised {
        format!("start it with `mp-remote start --service {service}` (mp-remote's supervisor: no systemd there) or `mp-remote deploy`")
    } else if !state.running {
        format!("start it with `mp-remote start --service {service}`")
    } else {
        format!("see `mp-remote logs --service {service}`")
    };
    format!("{unit} {problem}: {todo}")
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
