//! `proxy_jump`: reading it (an inventory host, `[user@]host[:port]`, or "none") and resolving
//! it into nested [`SshTarget`]s, including `~/.ssh/config` ProxyJump chains, with loop
//! detection.

use std::collections::HashMap;
use std::path::PathBuf;

use toml::Spanned;

use super::address::{check_address, check_user};
use super::error::{known_list, InventoryError, Source};
use super::names::shown;
use super::resolve::{Base, Env, DEFAULT_PORT};
use super::ssh_config::{expand_identity_files, expand_tokens, SshConfigFile, Tokens};
use super::validate::Checker;
use super::Connection;
use crate::transport::target::SshTarget;

/// More jumps than this through `~/.ssh/config` ProxyJump is treated as a loop.
const MAX_JUMPS: usize = 16;

/// `[user@]host[:port]` (also `ssh://…` and `[v6]:port`): a jump host outside the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JumpSpec {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

pub(crate) fn parse_jump_spec(text: &str) -> Result<JumpSpec, String> {
    let text = text.trim();
    let rest = text.strip_prefix("ssh://").unwrap_or(text);
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) => {
            if user.is_empty() || user.contains(char::is_whitespace) {
                return Err(format!("invalid user {user:?}"));
            }
            (Some(user.to_string()), rest)
        }
        None => (None, rest),
    };
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| "missing ']' after the IPv6 address".to_string())?;
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {after:?} after ']'")),
            },
        }
    } else if rest.matches(':').count() == 1 {
        let (host, port) = rest.split_once(':').unwrap_or((rest, ""));
        (host, Some(port))
    } else {
        // No colon, or a bare IPv6 address (several colons, no port).
        (rest, None)
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains('/') {
        return Err(format!("invalid host {host:?}"));
    }
    let port = match port {
        None => None,
        Some(port) => match port.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => return Err(format!("invalid port {port:?} (use 1 to 65535)")),
        },
    };
    Ok(JumpSpec {
        user,
        host: host.to_string(),
        port,
    })
}

/// Where a host's jump comes from, before resolution.
#[derive(Debug, Clone)]
pub(crate) enum Jump {
    None,
    /// Another inventory host, by index.
    Host(usize),
    /// A `[user@]host[:port]` from the inventory.
    Spec(JumpSpec, String),
    /// A ProxyJump list from `~/.ssh/config` (first hop first).
    SshConfig(Vec<String>),
}

/// Reads `proxy_jump` (`validate` saw it is neither empty nor a list): "none" switches an
/// inherited jump off, an inventory host name refers to that host, anything else is
/// `[user@]host[:port]`. A bare word that is neither a host nor an ssh config alias is taken
/// as a misspelt host name rather than silently as a DNS name.
pub(crate) fn jump_from_inventory(
    src: &Source<'_>,
    names: &[&str],
    index: &HashMap<String, usize>,
    ssh: Option<&SshConfigFile>,
    me: usize,
    value: &Spanned<String>,
    set_on_host: bool,
) -> Result<Jump, InventoryError> {
    let text = value.get_ref().trim();
    let my_name = names.get(me).copied().unwrap_or_default();
    if text.is_empty() || text.eq_ignore_ascii_case("none") {
        return Ok(Jump::None);
    }
    if let Some(&j) = index.get(text) {
        if j == me {
            // "Everyone goes through the bastion" set in [defaults] or a group must not make the
            // bastion jump through itself; on the host itself it is a real mistake.
            if !set_on_host {
                return Ok(Jump::None);
            }
            return Err(InventoryError::ProxyJumpLoop {
                at: src.at(value.span()),
                cycle: vec![my_name.to_string(), my_name.to_string()],
            });
        }
        return Ok(Jump::Host(j));
    }
    let bare = !text.contains(['@', ':', '.']);
    if bare && !ssh.is_some_and(|s| s.defines_alias(text)) {
        return Err(src.invalid(
            value.span(),
            format!("proxy_jump {text:?} in host {my_name:?} is not a host in this inventory"),
            format!(
                "use one of {}, or write user@address:port for a machine outside the inventory",
                known_list(names)
            ),
        ));
    }
    parse_jump_spec(text)
        .and_then(|spec| {
            let checked = check_address(&spec.host).map_err(|r| (r, "host"));
            let checked = checked.and_then(|()| match &spec.user {
                Some(user) => check_user(user).map_err(|r| (r, "user")),
                None => Ok(()),
            });
            checked.map_err(|(refusal, part)| format!("its {part} {}", refusal.problem))?;
            Ok(spec)
        })
        .map(|spec| Jump::Spec(spec, text.to_string()))
        .map_err(|reason| {
            src.invalid(
                value.span(),
                format!("invalid proxy_jump {text:?} in host {my_name:?}: {reason}"),
                "write the name of another [[hosts]] entry, or user@address:port",
            )
        })
}

impl Checker<'_> {
    /// What any layer's `proxy_jump` must be, whichever host it ends up on: one jump (a host
    /// of the inventory, `[user@]host[:port]`) or "none"; the rest is checked per host.
    pub(super) fn proxy_jump(
        &self,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<Spanned<String>, InventoryError> {
        let text = value.get_ref().trim();
        if text.is_empty() {
            return Err(self.src.invalid(
                value.span(),
                format!("empty proxy_jump in {scope}"),
                "write the name of another [[hosts]] entry or user@address:port, or \"none\" to switch off a jump set in [defaults] or a group",
            ));
        }
        if text.contains(',') {
            return Err(self.src.invalid(
                value.span(),
                format!("proxy_jump {} in {scope} lists several jumps", shown(text)),
                "name only the first jump host: give that host its own proxy_jump for the next hop (a chain of [[hosts]])",
            ));
        }
        Ok(value.clone())
    }
}

/// Resolves jumps depth-first with memoisation; `stack` holds the inventory hosts being
/// resolved, so meeting one again is a loop.
pub(crate) struct JumpResolver<'a> {
    src: &'a Source<'a>,
    ssh: Option<&'a SshConfigFile>,
    env: &'a Env,
    bases: &'a [Base],
    memo: Vec<Option<SshTarget>>,
    stack: Vec<usize>,
}

impl<'a> JumpResolver<'a> {
    pub fn new(
        src: &'a Source<'a>,
        ssh: Option<&'a SshConfigFile>,
        env: &'a Env,
        bases: &'a [Base],
    ) -> Self {
        JumpResolver {
            src,
            ssh,
            env,
            bases,
            memo: vec![None; bases.len()],
            stack: Vec::new(),
        }
    }

    pub fn resolve(&mut self, i: usize) -> Result<SshTarget, InventoryError> {
        if let Some(Some(done)) = self.memo.get(i) {
            return Ok(done.clone());
        }
        let bases = self.bases;
        let base = &bases[i];
        if let Some(pos) = self.stack.iter().position(|&s| s == i) {
            let mut cycle: Vec<String> = self.stack[pos..]
                .iter()
                .map(|&s| self.bases[s].name.clone())
                .collect();
            cycle.push(base.name.clone());
            let first = &self.bases[self.stack[pos]];
            return Err(InventoryError::ProxyJumpLoop {
                at: self.src.at(first.jump_span.clone()),
                cycle,
            });
        }
        self.stack.push(i);
        let mut target = base.target.clone();
        target.jump = match &base.jump {
            Jump::None => None,
            Jump::Host(j) => {
                let j = *j;
                if self.bases[j].connection == Connection::Local {
                    return Err(self.src.invalid(
                        base.jump_span.clone(),
                        format!(
                            "proxy_jump of host {:?} names host {:?}, which has connection = \"local\"",
                            base.name, self.bases[j].name
                        ),
                        "jump through a host reached over SSH, or remove proxy_jump",
                    ));
                }
                Some(Box::new(self.resolve(j)?))
            }
            Jump::Spec(spec, label) => {
                let mut seen = Vec::new();
                Some(Box::new(self.outside(i, spec, label, true, &mut seen)?))
            }
            Jump::SshConfig(list) => Some(Box::new(self.config_chain(i, list, &mut Vec::new())?)),
        };
        self.stack.pop();
        self.memo[i] = Some(target.clone());
        Ok(target)
    }

    /// A ProxyJump list `a,b`: connect to `a`, through it to `b`, through that to the host. So
    /// `b` is the direct jump and `a` its jump; only `a` consults its own ProxyJump.
    fn config_chain(
        &self,
        owner: usize,
        list: &[String],
        seen: &mut Vec<String>,
    ) -> Result<SshTarget, InventoryError> {
        let mut previous: Option<SshTarget> = None;
        for (n, hop) in list.iter().enumerate() {
            let spec = parse_jump_spec(hop).map_err(|reason| {
                self.src.invalid(
                    self.bases[owner].jump_span.clone(),
                    format!(
                        "ssh config ProxyJump {hop:?} for host {:?} is invalid: {reason}",
                        self.bases[owner].name
                    ),
                    "fix ProxyJump in ~/.ssh/config, or set proxy_jump for this host",
                )
            })?;
            let mut target = self.outside(owner, &spec, hop, n == 0, seen)?;
            if n > 0 {
                target.jump = previous.take().map(Box::new);
            }
            previous = Some(target);
        }
        previous.ok_or_else(|| {
            self.src.invalid(
                self.bases[owner].jump_span.clone(),
                "empty ProxyJump in ssh config",
                "fix ProxyJump in ~/.ssh/config",
            )
        })
    }

    /// A jump host outside the inventory: what the spec says, then `~/.ssh/config` for that
    /// name, then the referring host's user, key files, known_hosts, policy and timeouts.
    fn outside(
        &self,
        owner: usize,
        spec: &JumpSpec,
        label: &str,
        follow_config_jump: bool,
        seen: &mut Vec<String>,
    ) -> Result<SshTarget, InventoryError> {
        let base = &self.bases[owner];
        let referrer = &base.target;
        if seen.contains(&spec.host) || seen.len() >= MAX_JUMPS {
            let mut cycle = vec![base.name.clone()];
            cycle.extend(seen.iter().cloned());
            cycle.push(spec.host.clone());
            return Err(InventoryError::ProxyJumpLoop {
                at: self.src.at(base.jump_span.clone()),
                cycle,
            });
        }
        seen.push(spec.host.clone());
        let looked_up = self.ssh.map(|s| s.lookup(&spec.host)).unwrap_or_default();
        let user = spec
            .user
            .clone()
            .or_else(|| looked_up.user.clone())
            .unwrap_or_else(|| referrer.user.clone());
        let port = spec.port.or(looked_up.port).unwrap_or(DEFAULT_PORT);
        let tokens = Tokens {
            host: &spec.host,
            home: self.env.home.as_deref(),
            local_user: &self.env.user,
            remote_user: &user,
            port,
        };
        let mut identity_files: Vec<PathBuf> =
            expand_identity_files(&looked_up.identity_files, &tokens)
                .into_iter()
                .filter(|p| self.env.exists(p))
                .collect();
        for file in &referrer.identity_files {
            if !identity_files.contains(file) {
                identity_files.push(file.clone());
            }
        }
        let jump = match (&looked_up.proxy_jump, follow_config_jump) {
            (Some(list), true) if !list.is_empty() => {
                Some(Box::new(self.config_chain(owner, list, seen)?))
            }
            _ => None,
        };
        Ok(SshTarget {
            label: label.to_string(),
            address: looked_up
                .host_name
                .as_deref()
                .map_or_else(|| spec.host.clone(), |h| expand_tokens(h, &tokens)),
            port,
            user,
            identity_files,
            host_key_checking: referrer.host_key_checking,
            known_hosts: referrer.known_hosts.clone(),
            connect_timeout: referrer.connect_timeout,
            keepalive: referrer.keepalive,
            jump,
        })
    }
}
