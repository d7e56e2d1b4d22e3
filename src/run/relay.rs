//! One upload of the agent per private network. Hosts of a run whose private addresses share
//! a network (an IPv4 /24, an IPv6 /64) form a group; the first of a group that lacks the
//! agent gets it from the control node and starts `agent relay` on its private address; the
//! others copy it from there (bash's `/dev/tcp`, which every Debian has) and check its
//! sha256 before it replaces anything. A relay that cannot start, or a copy that fails or
//! arrives wrong, falls back to the direct upload, and the host's record says why.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::agent_exec::{agent_path, push_agent, AgentBinary};
use super::session::Connected;
use crate::inventory::{Connection, Host};
use crate::transport::shell::quote;

/// How a host got its agent: the message of its `detect.agent` step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arrival {
    /// It had this very build already.
    There,
    /// From the control node: `bytes` as sent (compressed).
    Uploaded { bytes: usize },
    /// From another host of its network.
    Relayed { from: String },
    /// The relay did not work out (`why`): uploaded from the control node instead.
    FellBack { from: String, why: String },
    /// The control node's own program, on this machine.
    Local,
}

impl Arrival {
    pub fn message(&self, sha256: &str) -> String {
        let id = &sha256[..16.min(sha256.len())];
        match self {
            Arrival::There => format!("agent {id} is there"),
            Arrival::Local => "agent: this program (local host)".into(),
            Arrival::Uploaded { bytes } => {
                format!("upload agent {id} ({} sent)", size(*bytes))
            }
            Arrival::Relayed { from } => {
                format!("copy agent {id} from {from} over the private network (sha256 checked)")
            }
            Arrival::FellBack { from, why } => {
                format!("upload agent {id}: the copy from {from} failed ({why})")
            }
        }
    }
}

/// Where a group's relay listens.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    address: String,
    port: u16,
}

/// A group's relay once its first host set it up (or why it could not).
type Cell = OnceCell<Result<Endpoint, String>>;

/// The relays of one run.
pub struct Relays {
    /// Host name → its network, for the hosts that share one with another host of the run.
    groups: BTreeMap<String, String>,
    /// (network, agent sha256) → its relay, made by the first host there that needs that
    /// build: hosts of one network but of different arches get different agents.
    relays: Mutex<BTreeMap<(String, String), Arc<Cell>>>,
    token: String,
    /// Test hook (`MP_REMOTE_RELAY_CUT=1`): relays serve half the file.
    cut: bool,
    /// (host, pid) of every relay started, to stop them once detect is over.
    started: Mutex<Vec<(String, u32)>>,
}

impl Relays {
    /// Groups `hosts` by network; `enabled` false (`--no-relay`): every host gets a direct
    /// upload.
    pub fn new(hosts: &[&Host], enabled: bool) -> Self {
        let mut by_network: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        if enabled {
            for host in hosts {
                if let Some(network) = network_of(host) {
                    by_network.entry(network).or_default().push(&host.name);
                }
            }
        }
        // The token only keeps strangers from asking a relay for a file that is no secret;
        // without one there is no relay.
        let token = super::deploy::generate_password().unwrap_or_default();
        let mut groups = BTreeMap::new();
        for (network, members) in by_network {
            if members.len() > 1 && !token.is_empty() {
                for name in members {
                    groups.insert(name.to_string(), network.clone());
                }
            }
        }
        Relays {
            groups,
            relays: Mutex::new(BTreeMap::new()),
            token,
            cut: std::env::var_os("MP_REMOTE_RELAY_CUT").is_some(),
            started: Mutex::new(Vec::new()),
        }
    }

    /// Puts `agent` on the host: there already, from its network's relay, or uploaded.
    /// Returns where it is and how it got there. `known_size`: the size of the file at the
    /// agent's path, as the facts probe found it.
    pub async fn place(
        &self,
        c: &Connected<'_>,
        is_root: bool,
        agent: &AgentBinary,
        known_size: Option<u64>,
    ) -> anyhow::Result<(String, Arrival)> {
        let host = c.host;
        if host.connection == Connection::Local {
            let (path, _) = push_agent(c.transport.as_ref(), host, is_root, agent).await?;
            return Ok((path, Arrival::Local));
        }
        // Agents arrive under a temporary name and are renamed only once whole (and, from a
        // relay, checked): a file of the right size at the content-addressed path is the one.
        // Hashing it again on every run cost a round trip and a read of the whole file.
        if known_size == Some(agent.bytes.len() as u64) {
            return Ok((agent_path(is_root, &agent.sha256), Arrival::There));
        }
        let Some(network) = self.groups.get(&host.name) else {
            return direct(c, is_root, agent).await;
        };
        let cell = self
            .relays
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((network.clone(), agent.sha256.clone()))
            .or_default()
            .clone();
        let path = agent_path(is_root, &agent.sha256);
        let there = c
            .transport
            .exec(&crate::transport::digest_command(&path), b"")
            .await?;
        if there.stdout_text().trim() == agent.sha256 {
            return Ok((path, Arrival::There));
        }
        let mut mine = None;
        let endpoint = cell
            .get_or_init(|| async {
                let result = self.start(c, is_root, agent).await;
                mine = Some(
                    result
                        .as_ref()
                        .map(|(_, bytes)| *bytes)
                        .map_err(String::clone),
                );
                result.map(|(endpoint, _)| endpoint)
            })
            .await;
        // This host is its group's relay: it got the upload.
        if let Some(result) = mine {
            return match result {
                Ok(bytes) => Ok((path, Arrival::Uploaded { bytes })),
                Err(_) => direct(c, is_root, agent).await,
            };
        }
        let from = match endpoint {
            Ok(e) => e.host.clone(),
            Err(_) => "its network's relay".to_string(),
        };
        let why = match endpoint {
            Ok(endpoint) => match self.fetch(c, &path, agent, endpoint).await {
                Ok(()) => return Ok((path, Arrival::Relayed { from })),
                Err(why) => why,
            },
            Err(why) => why.clone(),
        };
        tracing::info!(
            "{}: agent relay from {from} failed ({why}): direct upload",
            host.name
        );
        direct(c, is_root, agent).await?;
        Ok((path, Arrival::FellBack { from, why }))
    }

    /// The group's first host: uploaded to, then serving. Err: why it cannot relay (its
    /// group members then upload directly; it got its agent if the upload worked).
    async fn start(
        &self,
        c: &Connected<'_>,
        is_root: bool,
        agent: &AgentBinary,
    ) -> Result<(Endpoint, usize), String> {
        let (path, _) = push_agent(c.transport.as_ref(), c.host, is_root, agent)
            .await
            .map_err(|e| format!("the upload to {} failed: {e:#}", c.host.name))?;
        let out = c
            .transport
            .exec(
                &start_command(&path, &c.host.private_address, &self.token, self.cut),
                b"",
            )
            .await
            .map_err(|e| format!("cannot start the relay on {}: {e}", c.host.name))?;
        let text = out.stdout_text();
        let word = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u32>().ok())
        };
        let (Some(pid), Some(port)) = (word("pid "), word("port ")) else {
            return Err(format!(
                "the relay on {} did not start: {}",
                c.host.name,
                crate::agent::outcome::tail(text.trim(), 3)
            ));
        };
        self.started
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((c.host.name.clone(), pid));
        let sent = crate::transport::sent_size(&agent.bytes, &agent.sha256);
        Ok((
            Endpoint {
                host: c.host.name.clone(),
                address: c.host.private_address.clone(),
                port: port as u16,
            },
            sent,
        ))
    }

    async fn fetch(
        &self,
        c: &Connected<'_>,
        path: &str,
        agent: &AgentBinary,
        from: &Endpoint,
    ) -> Result<(), String> {
        let out = c
            .transport
            .exec(
                &fetch_command(path, &from.address, from.port, &self.token, &agent.sha256),
                b"",
            )
            .await
            .map_err(|e| e.to_string())?;
        if out.success() {
            Ok(())
        } else {
            let said = out.stderr_text();
            Err(match said.trim() {
                "" => format!("exit {:?}", out.status),
                text => crate::agent::outcome::tail(text, 2).replace('\n', "; "),
            })
        }
    }

    /// Stops the relays this run started (they would stop themselves once idle anyway).
    pub async fn stop(&self, connected: &[Connected<'_>]) {
        let started = std::mem::take(&mut *self.started.lock().unwrap_or_else(|e| e.into_inner()));
        for (name, pid) in started {
            if let Some(c) = connected.iter().find(|c| c.host.name == name) {
                let _ = c
                    .transport
                    .exec(&format!("kill {pid} 2>/dev/null; true"), b"")
                    .await;
            }
        }
    }
}

async fn direct(
    c: &Connected<'_>,
    is_root: bool,
    agent: &AgentBinary,
) -> anyhow::Result<(String, Arrival)> {
    let (path, uploaded) = push_agent(c.transport.as_ref(), c.host, is_root, agent).await?;
    let arrival = if uploaded {
        Arrival::Uploaded {
            bytes: crate::transport::sent_size(&agent.bytes, &agent.sha256),
        }
    } else {
        Arrival::There
    };
    Ok((path, arrival))
}

/// The network a host's private address is on, when a relay can serve it: not a local host,
/// not a loopback address (each host's own).
pub fn network_of(host: &Host) -> Option<String> {
    if host.connection == Connection::Local {
        return None;
    }
    match host.private_address.parse::<IpAddr>().ok()? {
        IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => {
            let [a, b, c, _] = ip.octets();
            Some(format!("{a}.{b}.{c}.0/24"))
        }
        IpAddr::V6(ip) if !ip.is_loopback() && !ip.is_unspecified() => {
            let s = ip.segments();
            Some(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
        }
        _ => None,
    }
}

/// Starts the relay in the background (its own session: it outlives this exec) and prints
/// `pid N` and, once it listens, `port N`.
fn start_command(agent: &str, address: &str, token: &str, cut: bool) -> String {
    let bind = if address.contains(':') {
        format!("[{address}]:0")
    } else {
        format!("{address}:0")
    };
    format!(
        "out=$(mktemp /tmp/mp-relay.XXXXXX) || exit 1; \
         setsid {agent} agent relay --file {agent} --bind {bind} --token {token}{cut} >\"$out\" 2>&1 </dev/null & \
         echo \"pid $!\"; i=0; \
         while [ $i -lt 100 ] && ! grep -q '^port ' \"$out\" && kill -0 $! 2>/dev/null; do sleep 0.05; i=$((i+1)); done; \
         cat \"$out\"; rm -f \"$out\"",
        agent = quote(agent),
        bind = quote(&bind),
        token = quote(token),
        cut = if cut { " --cut" } else { "" },
    )
}

/// Copies the agent from the relay into a temporary file beside `path`, checks its sha256
/// and renames it into place; says on stderr what went wrong.
fn fetch_command(path: &str, address: &str, port: u16, token: &str, sha256: &str) -> String {
    let dir = match path.rfind('/') {
        Some(i) => &path[..i],
        None => ".",
    };
    format!(
        "command -v bash >/dev/null || {{ echo 'no bash on the host' >&2; exit 3; }}; \
         mkdir -p {dir} || exit 1; tmp={path}.mp-relay.$$; trap 'rm -f \"$tmp\"' EXIT; \
         timeout 60 bash -c 'exec 3<>\"/dev/tcp/$1/$2\" && printf \"%s\\n\" \"$3\" >&3 && cat <&3' relay {address} {port} {token} >\"$tmp\" \
           || {{ echo \"cannot reach {address} port {port}\" >&2; exit 4; }}; \
         got=$(sha256sum \"$tmp\" | cut -d' ' -f1); \
         [ \"$got\" = {sha256} ] || {{ echo \"got $(wc -c <\"$tmp\") bytes with another sha256\" >&2; exit 5; }}; \
         chmod 755 \"$tmp\" && mv -f \"$tmp\" {path} && trap - EXIT",
        dir = quote(dir),
        path = quote(path),
        address = quote(address),
        token = quote(token),
    )
}

/// "9.1 MiB", "512 KiB", "300 B".
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        b if b >= 1 << 10 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, private: &str, local: bool) -> Host {
        let connection = if local {
            "connection = \"local\"\n"
        } else {
            ""
        };
        let text = format!(
            "[[hosts]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nprivate_address = \"{private}\"\n{connection}roles = [\"collector\"]\n"
        );
        crate::inventory::parse(&text, std::path::Path::new("t.toml"), None)
            .unwrap()
            .host(name)
            .unwrap()
            .clone()
    }

    #[test]
    fn hosts_group_by_network_and_a_lone_host_gets_no_relay() {
        let hosts = [
            host("a", "10.0.1.5", false),
            host("b", "10.0.1.9", false),
            host("c", "10.0.2.9", false),
            host("d", "127.0.0.1", false),
            host("e", "10.0.1.7", true),
            host("f", "fd00:1:2:3::9", false),
            host("g", "fd00:1:2:3::a", false),
        ];
        let refs: Vec<&Host> = hosts.iter().collect();
        let relays = Relays::new(&refs, true);
        let grouped: Vec<&str> = relays.groups.keys().map(String::as_str).collect();
        assert_eq!(grouped, ["a", "b", "f", "g"]);
        assert_eq!(relays.groups["a"], relays.groups["b"]);
        assert_ne!(relays.groups["a"], relays.groups["f"]);
        assert!(Relays::new(&refs, false).groups.is_empty());
        assert_eq!(network_of(&hosts[5]).as_deref(), Some("fd00:1:2:3::/64"));
    }

    #[test]
    fn the_commands_are_valid_sh_and_check_the_copy() {
        let start = start_command(
            "/var/lib/mp-remote/bin/mp-remote-0123",
            "10.0.1.5",
            "tok",
            false,
        );
        assert!(start.contains("agent relay --file /var/lib/mp-remote/bin/mp-remote-0123 --bind 10.0.1.5:0 --token tok"));
        let fetch = fetch_command(
            ".mp-remote/bin/mp-remote-0123",
            "10.0.1.5",
            4000,
            "tok",
            "abc",
        );
        assert!(fetch.contains("[ \"$got\" = abc ]"));
        for line in [start, fetch] {
            let ok = std::process::Command::new("sh")
                .args(["-n", "-c", &line])
                .status()
                .unwrap();
            assert!(ok.success(), "{line}");
        }
    }

    #[tokio::test]
    async fn a_copy_through_the_relay_is_checked_and_a_cut_one_refused() {
        if std::process::Command::new("bash")
            .arg("--version")
            .output()
            .is_err()
        {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent");
        std::fs::write(&file, vec![7u8; 100_000]).unwrap();
        let sha = crate::agent::actions::app_release::file_sha256(&file).unwrap();
        for cut in [false, true] {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let relay = tokio::spawn(crate::agent::relay::run(crate::agent::relay::Relay {
                file: file.clone(),
                bind: format!("127.0.0.1:{port}"),
                token: "tok".into(),
                idle: std::time::Duration::from_secs(2),
                cut,
            }));
            let target = dir.path().join(format!("bin/copy-{cut}"));
            let line = fetch_command(target.to_str().unwrap(), "127.0.0.1", port, "tok", &sha);
            // The relay may need a moment to listen: retry the whole copy until it does.
            let mut output = None;
            for _ in 0..50 {
                let o = tokio::process::Command::new("sh")
                    .args(["-c", &line])
                    .output()
                    .await
                    .unwrap();
                let refused = String::from_utf8_lossy(&o.stderr).contains("cannot reach");
                output = Some(o);
                if !refused {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            let output = output.unwrap();
            let said = String::from_utf8_lossy(&output.stderr).into_owned();
            if cut {
                assert!(!output.status.success());
                assert!(said.contains("50000 bytes with another sha256"), "{said}");
                assert!(!target.exists(), "nothing half-copied in place");
            } else {
                assert!(output.status.success(), "{said}");
                assert_eq!(std::fs::read(&target).unwrap().len(), 100_000);
            }
            relay.abort();
        }
    }
}
