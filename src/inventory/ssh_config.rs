//! `~/.ssh/config`, read with the `ssh2-config` crate: it already implements what matters here the
//! way OpenSSH does (`Host` patterns with `*`/`?`/`!`, first value wins, `IdentityFile`
//! accumulating across blocks, `Include`, `~` expansion), so only two gaps are filled here:
//! `Match` blocks (not understood by the crate, whose options would otherwise leak into the
//! preceding `Host` block; we cannot evaluate them, so they are skipped) and `%` tokens.
//! Only HostName, User, Port, IdentityFile and ProxyJump are used.

use std::collections::BTreeSet;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ssh2_config::{ParseRule, SshConfig};

use super::error::{InventoryError, Location};

/// What `~/.ssh/config` says about one host alias.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SshHostConfig {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `~` expanded; `%` tokens not yet (they depend on the final user and port).
    pub identity_files: Vec<String>,
    /// `Some(empty)` for `ProxyJump none`, which switches jumping off.
    pub proxy_jump: Option<Vec<String>>,
}

/// A parsed ssh config.
pub(crate) struct SshConfigFile {
    config: SshConfig,
    /// Host patterns without wildcards or negation: names that the config defines as aliases.
    literal_hosts: BTreeSet<String>,
}

const RULES: ParseRule = ParseRule::ALLOW_UNKNOWN_FIELDS.union(ParseRule::ALLOW_UNSUPPORTED_FIELDS);

/// Rewrites `Match ...` lines into a `Host` block that matches nothing, so the options under a
/// `Match` (which we cannot evaluate) apply to no host rather than to the block before it.
fn neutralise_match_blocks(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            let keyword_end = trimmed
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(trimmed.len());
            if trimmed[..keyword_end].eq_ignore_ascii_case("match") {
                "Host !*"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn parse_text(text: &str, home: Option<&Path>) -> Result<SshConfig, ssh2_config::SshParserError> {
    let mut config = SshConfig::default();
    if let Some(home) = home {
        config = config.home_dir(home);
    }
    config.parse(&mut BufReader::new(text.as_bytes()), RULES)
}

impl SshConfigFile {
    /// Parses `text` (the content of `path`). The crate reports no line numbers, so on an error
    /// the first failing line is found by parsing ever longer prefixes (binary search).
    pub fn parse(text: &str, path: &Path, home: Option<&Path>) -> Result<Self, InventoryError> {
        let prepared = neutralise_match_blocks(text);
        let config = match parse_text(&prepared, home) {
            Ok(config) => config,
            Err(err) => {
                let lines: Vec<&str> = prepared.lines().collect();
                let (mut good, mut bad) = (0, lines.len());
                while bad - good > 1 {
                    let mid = (good + bad) / 2;
                    if parse_text(&lines[..mid].join("\n"), home).is_ok() {
                        good = mid;
                    } else {
                        bad = mid;
                    }
                }
                let offset: usize = text
                    .split_inclusive('\n')
                    .take(bad.saturating_sub(1))
                    .map(str::len)
                    .sum();
                let indent = text.get(offset..).map_or(0, |rest| {
                    rest.len() - rest.trim_start_matches([' ', '\t']).len()
                });
                let start = offset + indent;
                let end = text
                    .get(start..)
                    .and_then(|s| s.find('\n'))
                    .map_or(text.len(), |i| start + i);
                return Err(InventoryError::SshConfig {
                    at: Box::new(Location::from_span(path, text, start..end)),
                    message: format!("cannot parse ssh config: {err}"),
                });
            }
        };
        let literal_hosts = config
            .get_hosts()
            .iter()
            .flat_map(|host| host.pattern.iter())
            .filter(|clause| !clause.negated && !clause.pattern.contains(['*', '?']))
            .map(|clause| clause.pattern.clone())
            .collect();
        Ok(SshConfigFile {
            config,
            literal_hosts,
        })
    }

    /// The settings for `alias`, matched against the `Host` patterns as OpenSSH does with the
    /// name given on its command line.
    pub fn lookup(&self, alias: &str) -> SshHostConfig {
        let params = self.config.query(alias);
        let proxy_jump = params.proxy_jump.map(|list| {
            let list: Vec<String> = list
                .into_iter()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if list.len() == 1 && list[0].eq_ignore_ascii_case("none") {
                Vec::new()
            } else {
                list
            }
        });
        SshHostConfig {
            host_name: params.host_name,
            user: params.user,
            port: params.port,
            identity_files: params
                .identity_file
                .unwrap_or_default()
                .into_iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect(),
            proxy_jump,
        }
    }

    /// Whether a `Host` line names exactly `name` (no wildcard), i.e. `name` is an ssh alias.
    pub fn defines_alias(&self, name: &str) -> bool {
        self.literal_hosts.contains(name)
    }
}

/// Values for the `%` tokens OpenSSH expands in HostName and IdentityFile.
pub(crate) struct Tokens<'a> {
    /// `%h`, `%n`: the name the host was looked up by (the inventory address).
    pub host: &'a str,
    /// `%d`: the local home directory.
    pub home: Option<&'a Path>,
    /// `%u`: the local user.
    pub local_user: &'a str,
    /// `%r`: the remote user.
    pub remote_user: &'a str,
    /// `%p`: the remote port.
    pub port: u16,
}

/// Expands `%%`, `%h`, `%n`, `%d`, `%u`, `%r` and `%p`; other tokens are left as written.
pub(crate) fn expand_tokens(s: &str, tokens: &Tokens<'_>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('h') | Some('n') => out.push_str(tokens.host),
            Some('d') => match tokens.home {
                Some(home) => out.push_str(&home.to_string_lossy()),
                None => out.push_str("%d"),
            },
            Some('u') => out.push_str(tokens.local_user),
            Some('r') => out.push_str(tokens.remote_user),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Expanded identity file paths.
pub(crate) fn expand_identity_files(files: &[String], tokens: &Tokens<'_>) -> Vec<PathBuf> {
    files
        .iter()
        .map(|f| PathBuf::from(expand_tokens(f, tokens)))
        .collect()
}
