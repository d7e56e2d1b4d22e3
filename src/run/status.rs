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
        "no systemd there: run `mp-remote deploy` to start it under mp-remote's supervisor"
            .to_string()
    } else if !state.running {
        format!("start it with `mp-remote start --service {service}`")
    } else {
        format!("see `mp-remote logs --service {service}`")
    };
    format!("{unit} {problem}: {todo}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on Debian 12 after a deploy (jsz compacted to one line), 2 messages published
    /// and 1 row inserted.
    const HEALTHY: &str = r#"Welcome to mp-1
mp_status=1
nats.active=active
nats.pkg=install ok installed|2.9.10-1+b3
nats.healthz.curl=0
nats.healthz.code=200
--- nats.healthz ---
{"status":"ok"}
--- end nats.healthz ---
nats.version=nats-server: v2.9.10
nats.jsz.curl=0
nats.jsz.code=200
--- nats.jsz ---
{ "server_id": "ND6H5TKIHSAQXXOZY3P2V5HTQFCACNFCM7AS5CLZEGAPLYRCENREDUA4", "now": "2026-11-25T20:59:18.137942595Z", "config": { "max_memory": 18957376512, "max_storage": 8589934592, "store_dir": "/var/lib/nats/jetstream/jetstream" }, "memory": 0, "storage": 78, "reserved_memory": 0, "reserved_storage": 4294967296, "accounts": 1, "ha_assets": 0, "api": { "total": 0, "errors": 0 }, "streams": 2, "consumers": 0, "messages": 2, "bytes": 78,
"account_details": [ { "name": "$G", "id": "$G", "memory": 0, "storage": 78, "reserved_memory": 18446744073709551615, "reserved_storage": 18446744073709551615, "accounts": 0, "ha_assets": 0, "api": { "total": 0, "errors": 0 },
"stream_detail": [ { "name": "MARKET_DATA", "created": "2026-11-25T20:53:25.740535666Z", "cluster": { "leader": "h1" }, "state": { "messages": 2, "bytes": 78, "first_seq": 1, "first_ts": "2026-11-25T20:59:11.472397131Z", "last_seq": 2, "last_ts": "2026-11-25T20:59:11.472933085Z", "num_subjects": 2, "consumer_count": 0 } },
{ "name": "ORDERBOOK_SNAP", "created": "2026-11-25T20:53:25.742972177Z", "cluster": { "leader": "h1" }, "state": { "messages": 0, "bytes": 0, "first_seq": 1, "first_ts": "1970-01-01T00:00:00Z", "last_seq": 0, "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0 } } ] } ]}
--- end nats.jsz ---
clickhouse.active=active
clickhouse.pkg=install ok installed|18.16.1+ds-7.3+b2
clickhouse.ping.curl=0
clickhouse.ping.code=200
--- clickhouse.ping ---
Ok.

--- end clickhouse.ping ---
clickhouse.version.curl=0
clickhouse.version.code=200
--- clickhouse.version ---
18.16.1

--- end clickhouse.version ---
clickhouse.tables.curl=0
clickhouse.tables.code=200
--- clickhouse.tables ---
{"name":"funding_rates"}
{"name":"liquidations"}
{"name":"lsr_all_accounts"}
{"name":"lsr_top_positions"}
{"name":"open_interests"}
{"name":"orderbooks"}
{"name":"trades"}
{"name":"volatility_indices"}

--- end clickhouse.tables ---
clickhouse.parts.curl=0
clickhouse.parts.code=200
--- clickhouse.parts ---
{"table":"trades","rows":"1"}

--- end clickhouse.parts ---
listen_source=ss
--- listen ---
LISTEN 0      4096   127.0.0.11:41495 0.0.0.0:*
LISTEN 0      64        0.0.0.0:9009  0.0.0.0:*
LISTEN 0      64        0.0.0.0:9000  0.0.0.0:*
LISTEN 0      64        0.0.0.0:8123  0.0.0.0:*
LISTEN 0      128       0.0.0.0:22    0.0.0.0:*
LISTEN 0      4096            *:8222        *:*
LISTEN 0      4096            *:4222        *:*
LISTEN 0      128          [::]:22       [::]:*
--- end listen ---
status_end=ok
"#;

    /// Captured after `systemctl stop nats-server` (ClickHouse part left out).
    const NATS_STOPPED: &str = "mp_status=1
nats.active=inactive
nats.pkg=install ok installed|2.9.10-1+b3
nats.healthz.curl=7
nats.healthz.code=000
--- nats.healthz ---
--- end nats.healthz ---
nats.version=nats-server: v2.9.10
nats.jsz.curl=7
nats.jsz.code=000
--- nats.jsz ---
--- end nats.jsz ---
listen_source=ss
--- listen ---
LISTEN 0      128       0.0.0.0:22    0.0.0.0:*
--- end listen ---
status_end=ok
";

    /// Captured after `systemctl stop clickhouse-server`: the queries are not even tried.
    const CLICKHOUSE_STOPPED: &str = "mp_status=1
clickhouse.active=inactive
clickhouse.pkg=install ok installed|18.16.1+ds-7.3+b2
clickhouse.ping.curl=7
clickhouse.ping.code=000
--- clickhouse.ping ---
--- end clickhouse.ping ---
listen_source=ss
--- listen ---
LISTEN 0      4096            *:4222        *:*
--- end listen ---
status_end=ok
";

    /// Captured after `mp-remote clean`: packages removed, config files left by dpkg.
    const CLEANED: &str = "mp_status=1
nats.active=inactive
nats.pkg=deinstall ok config-files|2.9.10-1+b3
nats.healthz.curl=7
nats.healthz.code=000
--- nats.healthz ---
--- end nats.healthz ---
nats.version=
nats.jsz.curl=7
nats.jsz.code=000
--- nats.jsz ---
--- end nats.jsz ---
clickhouse.active=inactive
clickhouse.pkg=deinstall ok config-files|18.16.1+ds-7.3+b2
clickhouse.ping.curl=7
clickhouse.ping.code=000
--- clickhouse.ping ---
--- end clickhouse.ping ---
listen_source=ss
--- listen ---
--- end listen ---
status_end=ok
";

    fn with_healthz(code: &str, body: &str) -> String {
        format!(
            "mp_status=1\nnats.active=active\nnats.pkg=install ok installed|2.9.10-1+b3\nnats.healthz.curl=0\nnats.healthz.code={code}\n--- nats.healthz ---\n{body}\n--- end nats.healthz ---\nstatus_end=ok\n"
        )
    }

    #[test]
    fn healthy_host() {
        let probe = parse(HEALTHY).unwrap();
        let nats = probe.service(Service::Nats);
        assert_eq!(
            (nats.running, nats.healthy, nats.version.as_deref()),
            (true, true, Some("2.9.10"))
        );
        assert_eq!(nats.ports, [4222, 8222]);
        assert_eq!(nats.problem(), None);
        let ch = probe.service(Service::Clickhouse);
        assert_eq!(
            (ch.running, ch.healthy, ch.version.as_deref()),
            (true, true, Some("18.16.1"))
        );
        assert_eq!(ch.ports, [8123, 9000, 9009]);
        let streams = probe.streams.unwrap().unwrap();
        assert_eq!(
            streams,
            BTreeMap::from([
                ("MARKET_DATA".to_string(), StreamState { messages: 2 }),
                ("ORDERBOOK_SNAP".to_string(), StreamState { messages: 0 }),
            ])
        );
        let tables = probe.tables.unwrap().unwrap();
        assert_eq!(tables.len(), 8);
        assert_eq!(tables["trades"], 1);
        assert_eq!(tables["orderbooks"], 0, "a table without parts has 0 rows");
    }

    #[test]
    fn stopped_nats_is_not_running_but_keeps_its_version() {
        let probe = parse(NATS_STOPPED).unwrap();
        let nats = probe.service(Service::Nats);
        assert!(!nats.running && !nats.healthy && nats.installed);
        assert_eq!(nats.version.as_deref(), Some("2.9.10"));
        assert!(nats.ports.is_empty());
        assert_eq!(
            nats.problem().as_deref(),
            Some("not running (systemctl is-active: inactive)")
        );
        assert_eq!(
            probe.streams,
            Some(Err("nats.jsz: connection refused".into()))
        );
        assert!(!probe.services.contains_key(&Service::Clickhouse));
        assert_eq!(probe.tables, None);
    }

    #[test]
    fn stopped_clickhouse_takes_its_version_from_the_package() {
        let probe = parse(CLICKHOUSE_STOPPED).unwrap();
        let ch = probe.service(Service::Clickhouse);
        assert!(!ch.running && !ch.healthy);
        assert_eq!(ch.version.as_deref(), Some("18.16.1"));
        assert_eq!(
            probe.tables,
            Some(Err("ClickHouse did not answer /ping".into()))
        );
        assert_eq!(probe.streams, None);
    }

    #[test]
    fn cleaned_host_has_nothing_installed() {
        let probe = parse(CLEANED).unwrap();
        for service in Service::ALL {
            let state = probe.service(service);
            assert!(!state.installed && !state.running, "{service}");
            assert_eq!(state.version, None, "{service}");
            assert_eq!(
                problem_line(service, &state, &state.problem().unwrap()),
                format!(
                    "{} is not installed: run `mp-remote deploy`",
                    service.unit()
                )
            );
        }
    }

    /// On a host without systemd, after `mp-remote stop --service nats`.
    #[test]
    fn supervised_nats_stopped_says_to_deploy() {
        let output = NATS_STOPPED.replace(
            "nats.active=inactive\n",
            "nats.active=inactive\nnats.manager=supervisor\n",
        );
        let state = parse(&output).unwrap().service(Service::Nats);
        assert!(state.supervised && !state.running && state.installed);
        let problem = state.problem().unwrap();
        assert_eq!(problem, "not running (mp-remote supervisor: inactive)");
        assert_eq!(
            problem_line(Service::Nats, &state, &problem),
            "nats-server not running (mp-remote supervisor: inactive): no systemd there: run `mp-remote deploy` to start it under mp-remote's supervisor"
        );
        let running = parse(&with_healthz("200", r#"{"status":"ok"}"#).replace(
            "nats.active=active\n",
            "nats.active=active\nnats.manager=supervisor\n",
        ))
        .unwrap()
        .service(Service::Nats);
        assert!(running.supervised && running.running && running.healthy);
    }

    #[test]
    fn healthz_json_is_parsed_never_substring_matched() {
        let cases = [
            ("200", r#"{"status":"ok"}"#, true),
            ("200", r#"{"status": "ok"}"#, true),
            ("200", r#"{"status":"not ok"}"#, false),
            ("200", r#"{"state":"ok"}"#, false),
            ("200", "ok", false),
            ("503", r#"{"status":"ok"}"#, false),
        ];
        for (code, body, healthy) in cases {
            let state = parse(&with_healthz(code, body))
                .unwrap()
                .service(Service::Nats);
            assert!(state.running);
            assert_eq!(state.healthy, healthy, "{code} {body}");
        }
        let state = parse(&with_healthz(
            "503",
            r#"{"status":"unavailable","error":"JetStream has not established contact with a meta leader"}"#,
        ))
        .unwrap()
        .service(Service::Nats);
        assert_eq!(
            state.problem().as_deref(),
            Some(
                r#"running but not healthy: nats.healthz: HTTP 503: {"status":"unavailable","error":"JetStream has not established contact with a meta leader"}"#
            )
        );
        let state = parse(&with_healthz(
            "200",
            r#"{"status":"unavailable","error":"no leader"}"#,
        ))
        .unwrap()
        .service(Service::Nats);
        assert_eq!(
            state.health_error.as_deref(),
            Some(r#"/healthz status is "unavailable": no leader"#)
        );
    }

    /// A pipeline service's part of the probe output: `active`, then its `/health` call
    /// (`curl` exit, HTTP `code`, `body`), full mode's version line.
    fn pipeline(service: &str, active: &str, curl: &str, code: &str, body: &str) -> String {
        format!(
            "{service}.active={active}\n{service}.installed=yes\n{service}.health.curl={curl}\n{service}.health.code={code}\n--- {service}.health ---\n{body}\n--- end {service}.health ---\n{service}.version=mp-remote 0.1.0\n"
        )
    }

    fn probe_of(sections: &[String]) -> HostProbe {
        parse(&format!(
            "mp_status=1\n{}status_end=ok\n",
            sections.concat()
        ))
        .unwrap()
    }

    /// A host that runs everything, storage and collector healthy (pretty-printed JSON too).
    #[test]
    fn healthy_pipeline_services() {
        let output = HEALTHY.replace(
            "listen_source=ss\n",
            &format!(
                "{}{}listen_source=ss\n",
                pipeline(
                    "storage",
                    "active",
                    "0",
                    "200",
                    r#"{"status":"healthy","nats":"connected","clickhouse":"connected","pending":0,"last_error":null}"#
                ),
                pipeline(
                    "collector",
                    "active",
                    "0",
                    "200",
                    "{\n  \"status\": \"healthy\",\n  \"published\": 1200\n}"
                ),
            ),
        )
        .replace(
            "LISTEN 0      128       0.0.0.0:22    0.0.0.0:*\n",
            "LISTEN 0      128       0.0.0.0:22    0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:8085  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:9094  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:8087  0.0.0.0:*\nLISTEN 0      1024      0.0.0.0:9093  0.0.0.0:*\n",
        );
        let probe = parse(&output).unwrap();
        assert_eq!(
            probe.services.keys().copied().collect::<Vec<_>>(),
            Service::ALL
        );
        for (service, ports) in [
            (Service::Storage, [8085, 9094]),
            (Service::Collector, [8087, 9093]),
        ] {
            let state = probe.service(service);
            assert!(
                state.running && state.healthy && state.installed,
                "{state:?}"
            );
            assert_eq!(state.version.as_deref(), Some("0.1.0"));
            assert_eq!(state.ports, ports);
            assert_eq!(state.problem(), None);
        }
        assert_eq!(probe.service(Service::Nats).ports, [4222, 8222]);
        assert_eq!(probe.tables.unwrap().unwrap()["trades"], 1);
    }

    #[test]
    fn degraded_or_unhealthy_pipeline_says_so_with_its_last_error() {
        let cases = [
            (
                "200",
                r#"{"status":"degraded","last_error":"NATS: connection refused, reconnecting"}"#,
                r#"/health status is "degraded": NATS: connection refused, reconnecting"#,
            ),
            (
                "503",
                r#"{"status":"unhealthy","last_error":"ClickHouse: table trades has different columns"}"#,
                r#"/health status is "unhealthy": ClickHouse: table trades has different columns"#,
            ),
            (
                "503",
                r#"{"status":"unhealthy"}"#,
                r#"/health status is "unhealthy""#,
            ),
            (
                "200",
                r#"{"status":"degraded","last_error":null}"#,
                r#"/health status is "degraded""#,
            ),
            (
                "200",
                r#"{"status":"degraded","last_error":{"hop":"nats"}}"#,
                r#"/health status is "degraded": {"hop":"nats"}"#,
            ),
            (
                "200",
                r#"{"state":"healthy"}"#,
                r#"/health status is "missing""#,
            ),
            (
                "200",
                r#"{"status":"Healthy"}"#,
                r#"/health status is "Healthy""#,
            ),
            (
                "503",
                r#"{"status":"healthy"}"#,
                r#"/health says "healthy" but answered HTTP 503"#,
            ),
            (
                "200",
                "healthy",
                "/health answered HTTP 200, not JSON (expected value at line 1 column 1): healthy",
            ),
        ];
        for (code, body, error) in cases {
            let state = probe_of(&[pipeline("storage", "active", "0", code, body)])
                .service(Service::Storage);
            assert!(state.running, "{body}");
            assert!(!state.healthy, "{code} {body}");
            assert_eq!(state.health_error.as_deref(), Some(error), "{code} {body}");
            assert_eq!(
                state.problem(),
                Some(format!("running but not healthy: {error}"))
            );
        }
        // "unhealthy" contains "healthy": never taken for it.
        let state = probe_of(&[pipeline(
            "collector",
            "active",
            "0",
            "200",
            r#"{"status":"unhealthy","detail":"healthy"}"#,
        )])
        .service(Service::Collector);
        assert!(!state.healthy);
    }

    #[test]
    fn pipeline_without_an_answer() {
        // Stopped under systemd: nothing listens.
        let stopped =
            probe_of(&[pipeline("storage", "inactive", "7", "000", "")]).service(Service::Storage);
        assert!(!stopped.running && !stopped.healthy && stopped.installed);
        assert_eq!(
            stopped.health_error.as_deref(),
            Some("storage.health: connection refused")
        );
        assert_eq!(stopped.version.as_deref(), Some("0.1.0"));
        let problem = stopped.problem().unwrap();
        assert_eq!(problem, "not running (systemctl is-active: inactive)");
        assert_eq!(
            problem_line(Service::Storage, &stopped, &problem),
            "mp-storage not running (systemctl is-active: inactive): start it with `mp-remote start --service storage`"
        );
        // Running, but its health port does not answer in time.
        let hung = probe_of(&[pipeline("collector", "active", "28", "000", "")])
            .service(Service::Collector);
        assert!(hung.running && !hung.healthy);
        assert_eq!(
            hung.problem().as_deref(),
            Some("running but not healthy: collector.health: no answer in time")
        );
        assert_eq!(
            problem_line(Service::Collector, &hung, &hung.problem().unwrap()),
            "mp-collector running but not healthy: collector.health: no answer in time: see `mp-remote logs --service collector`"
        );
        // Under mp-remote's supervisor, its server restarting.
        let supervised = probe_of(
            &[pipeline("collector", "restarting", "7", "000", "").replace(
                "collector.active=restarting\n",
                "collector.active=restarting\ncollector.manager=supervisor\n",
            )],
        )
        .service(Service::Collector);
        assert!(supervised.supervised && !supervised.running);
        assert_eq!(
            supervised.problem().as_deref(),
            Some("not running (mp-remote supervisor: restarting)")
        );
        // Never deployed (or cleaned): no release, no config, no version.
        let absent = probe_of(&[pipeline("storage", "inactive", "7", "000", "")
            .replace("storage.installed=yes", "storage.installed=no")
            .replace("storage.version=mp-remote 0.1.0", "storage.version=")])
        .service(Service::Storage);
        assert!(!absent.installed && absent.version.is_none());
        assert_eq!(
            problem_line(Service::Storage, &absent, &absent.problem().unwrap()),
            "mp-storage is not installed: run `mp-remote deploy`"
        );
        // Health mode: no version line.
        let health =
            probe_of(&[
                pipeline("storage", "active", "0", "200", r#"{"status":"healthy"}"#)
                    .replace("storage.version=mp-remote 0.1.0\n", ""),
            ])
            .service(Service::Storage);
        assert!(health.healthy && health.version.is_none());
        // A host without a ClickHouse role has no tables.
        assert_eq!(
            probe_of(&[pipeline(
                "storage",
                "active",
                "0",
                "200",
                r#"{"status":"healthy"}"#
            )])
            .tables,
            None
        );
    }

    #[test]
    fn row_counts_as_numbers_or_strings() {
        let output = HEALTHY.replace(
            r#"{"table":"trades","rows":"1"}"#,
            "{\"table\":\"trades\",\"rows\":7}\n{\"table\":\"orderbooks\",\"rows\":\"18446744073709551615\"}",
        );
        let tables = parse(&output).unwrap().tables.unwrap().unwrap();
        assert_eq!(tables["trades"], 7);
        assert_eq!(tables["orderbooks"], u64::MAX);
    }

    #[test]
    fn framing_errors() {
        assert!(matches!(
            parse("sudo: a password is required\n"),
            Err(StatusParseError::NotProbeOutput { .. })
        ));
        let cut = &HEALTHY[..HEALTHY.find("clickhouse.active").unwrap()];
        assert!(matches!(
            parse(cut),
            Err(StatusParseError::Truncated { .. })
        ));
        assert!(parse(&HEALTHY.replace('\n', "\r\n")).is_ok());
    }

    #[test]
    fn streams_come_from_the_first_nats_host_that_answers() {
        let healthy = parse(HEALTHY).unwrap();
        let stopped = parse(NATS_STOPPED).unwrap();
        let clickhouse = parse(CLICKHOUSE_STOPPED).unwrap();
        type Hosts<'a> = &'a [(bool, Option<&'a HostProbe>)];
        let cases: [(Hosts, Option<usize>); 4] = [
            (
                &[(false, Some(&clickhouse)), (true, Some(&healthy))],
                Some(1),
            ),
            (
                &[(true, None), (true, Some(&stopped)), (true, Some(&healthy))],
                Some(2),
            ),
            (&[(true, None), (true, Some(&stopped))], Some(1)),
            (&[(false, Some(&clickhouse)), (true, None)], None),
        ];
        for (hosts, expected) in cases {
            assert_eq!(stream_host(hosts), expected, "{hosts:?}");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(
            command(
                Mode::Full,
                &[Service::Nats, Service::Clickhouse],
                "/opt/marketprism",
                false
            ),
            "sh -s -- full /opt/marketprism nats clickhouse"
        );
        assert_eq!(
            command(
                Mode::Health,
                &[Service::Clickhouse],
                "/opt/marketprism",
                true
            ),
            "sudo -n -- sh -c 'sh -s -- health /opt/marketprism clickhouse'"
        );
        assert_eq!(
            command(Mode::Full, &Service::ALL, "/srv/mp apps", false),
            "sh -s -- full '/srv/mp apps' nats clickhouse storage collector"
        );
        assert_eq!(
            command(Mode::Health, &[Service::Storage], "/srv/mp apps", true),
            r"sudo -n -- sh -c 'sh -s -- health '\''/srv/mp apps'\'' storage'"
        );
    }

    #[test]
    fn deploy_dir_from_the_host_var_else_the_default() {
        let text = "[[hosts]]\nname = \"a\"\naddress = \"10.0.0.1\"\nroles = [\"storage\"]\n\n[[hosts]]\nname = \"b\"\naddress = \"10.0.0.2\"\nroles = [\"collector\"]\n[hosts.vars]\ndeploy_dir = \"/srv/mp\"\n";
        let inv = crate::inventory::parse(text, std::path::Path::new("inv.toml"), None).unwrap();
        assert_eq!(deploy_dir(&inv.hosts[0]), "/opt/marketprism");
        assert_eq!(deploy_dir(&inv.hosts[1]), "/srv/mp");
    }

    /// The script's hard-wired units, ports and config paths are deploy's.
    #[test]
    fn script_knows_the_pipeline_services() {
        for service in [Service::Storage, Service::Collector] {
            let pipeline = service.pipeline().unwrap();
            assert!(SCRIPT.contains(&format!(
                "{}) unit={} port={} ;;",
                service.name(),
                service.unit(),
                pipeline.health_port()
            )));
            assert_eq!(
                pipeline.config_path(),
                format!("/etc/marketprism/{}.toml", service.name())
            );
        }
        assert!(SCRIPT.contains(r#"[ -e "/etc/marketprism/$s.toml" ]"#));
    }

    /// The script itself, run here under every POSIX shell there is: whatever runs or not on
    /// this machine, its output parses.
    #[test]
    fn script_runs_and_parses_under_sh_and_dash() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        for shell in ["sh", "dash", "bash"] {
            let Ok(mut child) = Command::new(shell)
                .args([
                    "-s",
                    "--",
                    "full",
                    "/nonexistent/mp-remote-status-test",
                    "nats",
                    "clickhouse",
                    "storage",
                    "collector",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
            else {
                continue;
            };
            child
                .stdin
                .take()
                .unwrap()
                .write_all(SCRIPT.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let probe = parse(&stdout).unwrap_or_else(|e| panic!("{shell}: {e}\n{stdout}"));
            assert_eq!(probe.services.len(), 4, "{shell}: {stdout}");
            assert!(probe.streams.is_some(), "{shell}: {stdout}");
            for service in [Service::Storage, Service::Collector] {
                assert!(
                    !probe.service(service).installed,
                    "{shell}: no release in /nonexistent: {stdout}"
                );
                assert!(
                    stdout.contains(&format!("{service}.health.code=")),
                    "{shell}: {stdout}"
                );
            }
        }
    }
}
