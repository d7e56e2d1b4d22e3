//! Checks for the values serde accepts but the inventory does not (ports, durations, roles,
//! names, enum-like strings, paths), each turned into a typed value or an error pointing at the
//! exact value in the file.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use toml::{Spanned, Table, Value};

use super::address::{check_address, check_user};
use super::collector::CollectorLayer;
use super::error::{InventoryError, Source};
use super::model::RawSettings;
use super::names::shown;
use super::{Connection, Role};
use crate::transport::target::HostKeyChecking;

/// The longest `connect_timeout` accepted.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(300);

/// One layer's connection settings (defaults, a group or a host), checked; `None` = not set here.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Option<Vec<PathBuf>>,
    pub host_key_checking: Option<HostKeyChecking>,
    pub known_hosts: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub keepalive: Option<Duration>,
    pub become_: Option<bool>,
    pub connection: Option<Connection>,
    pub proxy_jump: Option<Spanned<String>>,
    pub vars: Table,
    pub collector: CollectorLayer,
}

impl Settings {
    /// Applies `upper` over `self`: every key `upper` sets wins; vars are merged deeply.
    pub fn overlay(&mut self, upper: &Settings) {
        fn over<T: Clone>(lower: &mut Option<T>, upper: &Option<T>) {
            if upper.is_some() {
                lower.clone_from(upper);
            }
        }
        over(&mut self.user, &upper.user);
        over(&mut self.port, &upper.port);
        over(&mut self.identity_files, &upper.identity_files);
        over(&mut self.host_key_checking, &upper.host_key_checking);
        over(&mut self.known_hosts, &upper.known_hosts);
        over(&mut self.connect_timeout, &upper.connect_timeout);
        over(&mut self.keepalive, &upper.keepalive);
        over(&mut self.become_, &upper.become_);
        over(&mut self.connection, &upper.connection);
        over(&mut self.proxy_jump, &upper.proxy_jump);
        merge_vars(&mut self.vars, &upper.vars);
        self.collector.overlay(&upper.collector);
    }
}

/// Deep merge: tables merge key by key, anything else (scalars, arrays) is replaced, so a host
/// can override one nested var without restating its siblings.
pub(crate) fn merge_vars(lower: &mut Table, upper: &Table) {
    for (key, value) in upper {
        match (lower.get_mut(key), value) {
            (Some(Value::Table(lower)), Value::Table(upper)) => merge_vars(lower, upper),
            _ => {
                lower.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Validation context: the source for locations, where relative paths start, and `~`.
pub(crate) struct Checker<'a> {
    pub src: Source<'a>,
    /// The inventory file's directory: relative paths in it are relative to the file.
    pub dir: PathBuf,
    pub home: Option<&'a Path>,
    /// Look at the key and known_hosts files named (not in tests with a made-up file system).
    pub probe_files: bool,
    /// Warnings so far, located.
    pub warnings: std::cell::RefCell<Vec<String>>,
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
}

impl Checker<'_> {
    /// A located warning, kept with the inventory.
    pub(crate) fn warn(&self, span: std::ops::Range<usize>, message: &str, hint: &str) {
        let at = self.src.at(span);
        self.warnings
            .borrow_mut()
            .push(format!("{at}: {message}: {hint}"));
    }

    /// An address (`address`, `private_address`): non-empty, no whitespace.
    pub fn address(
        &self,
        key: &str,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<String, InventoryError> {
        let text = value.get_ref().trim();
        check_address(text).map_err(|refusal| {
            self.src.invalid(
                value.span(),
                format!(
                    "invalid {key} {} in {scope}: {}",
                    shown(value.get_ref()),
                    refusal.problem
                ),
                refusal.hint,
            )
        })?;
        Ok(text.to_string())
    }

    pub fn roles(
        &self,
        scope: &str,
        roles: &[Spanned<String>],
    ) -> Result<Vec<Role>, InventoryError> {
        let mut out = Vec::new();
        for role in roles {
            let parsed = Role::from_str(role.get_ref()).map_err(|_| {
                self.src.invalid(
                    role.span(),
                    format!("unknown role {:?} in {scope}", role.get_ref()),
                    format!("use one of {}", Role::allowed()),
                )
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    fn port(&self, scope: &str, value: &Spanned<Value>) -> Result<u16, InventoryError> {
        let fail = |message: String, hint: &str| self.src.invalid(value.span(), message, hint);
        match value.get_ref() {
            Value::Integer(n) => match u16::try_from(*n) {
                Ok(port) if port > 0 => Ok(port),
                _ => Err(fail(
                    format!("port {n} in {scope} is out of range"),
                    "use a number from 1 to 65535 (ssh listens on 22)",
                )),
            },
            Value::String(s) => {
                let hint = match s.trim().parse::<u16>() {
                    Ok(n) if n > 0 => format!("write port = {n}, without quotes"),
                    _ => "write a number from 1 to 65535, without quotes".to_string(),
                };
                Err(fail(
                    format!("port in {scope} must be a number, not the string {s:?}"),
                    &hint,
                ))
            }
            other => Err(fail(
                format!("port in {scope} must be a number, not {}", type_name(other)),
                "write a number from 1 to 65535, e.g. port = 22",
            )),
        }
    }

    /// `"10s"`, `"1m 30s"`, `"500ms"` (humantime), or a bare integer meaning seconds.
    /// A handshake longer than this is a host that will not answer: waiting on only makes a
    /// fleet run as slow as its worst host (`--timeout` bounds whole tasks).
    fn connect_timeout(
        &self,
        scope: &str,
        value: &Spanned<Value>,
    ) -> Result<Duration, InventoryError> {
        let d = self.duration("connect_timeout", scope, value, false)?;
        if d > MAX_CONNECT_TIMEOUT {
            return Err(self.src.invalid(
                value.span(),
                format!(
                    "connect_timeout in {scope} is {}, above the {} mp-remote allows",
                    humantime::format_duration(d),
                    humantime::format_duration(MAX_CONNECT_TIMEOUT)
                ),
                "a host that has not answered in 5 minutes will not: e.g. connect_timeout = \"30s\" (and --timeout DUR for whole tasks)",
            ));
        }
        Ok(d)
    }

    pub(crate) fn duration(
        &self,
        key: &str,
        scope: &str,
        value: &Spanned<Value>,
        allow_zero: bool,
    ) -> Result<Duration, InventoryError> {
        let hint = "write a number with a unit, e.g. \"10s\", \"2m\" or \"500ms\"";
        let duration = match value.get_ref() {
            Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                // humantime appends the whole list of unit spellings; the hint is enough.
                let reason = e.to_string();
                let reason = reason.split(", supported units").next().unwrap_or_default();
                self.src.invalid(
                    value.span(),
                    format!("invalid duration {s:?} for {key} in {scope} ({reason})"),
                    hint,
                )
            })?,
            Value::Integer(n) if *n >= 0 => Duration::from_secs(n.unsigned_abs()),
            other => {
                return Err(self.src.invalid(
                    value.span(),
                    format!(
                        "invalid duration for {key} in {scope}: got {}",
                        match other {
                            Value::Integer(n) => n.to_string(),
                            other => type_name(other).to_string(),
                        }
                    ),
                    hint,
                ))
            }
        };
        if duration.is_zero() && !allow_zero {
            return Err(self.src.invalid(
                value.span(),
                format!("{key} in {scope} must be longer than 0s"),
                hint,
            ));
        }
        Ok(duration)
    }

    /// `~` or `~/x` → home; relative → relative to the inventory file's directory.
    pub fn path(&self, raw: &str) -> PathBuf {
        expand_path(raw, self.home, &self.dir)
    }

    pub(super) fn path_value(
        &self,
        key: &str,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<PathBuf, InventoryError> {
        let text = value.get_ref().trim();
        if text.is_empty() {
            return Err(self.src.invalid(
                value.span(),
                format!("empty {key} in {scope}"),
                "write a path, e.g. \"~/.ssh/id_ed25519\", or remove the key",
            ));
        }
        Ok(self.path(text))
    }

    fn identity_files(
        &self,
        scope: &str,
        value: &Spanned<Value>,
    ) -> Result<Vec<PathBuf>, InventoryError> {
        let hint = "write a path, e.g. \"~/.ssh/id_ed25519\", or a list of paths";
        let item = |text: &str| {
            if text.trim().is_empty() {
                Err(self.src.invalid(
                    value.span(),
                    format!("empty identity_file in {scope}"),
                    hint,
                ))
            } else {
                let path = self.path(text.trim());
                self.key_file(scope, value.span(), &path)?;
                Ok(path)
            }
        };
        match value.get_ref() {
            Value::String(s) => Ok(vec![item(s)?]),
            Value::Array(items) if !items.is_empty() => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => item(s),
                    other => Err(self.src.invalid(
                        value.span(),
                        format!(
                            "identity_file in {scope} lists {}, not a path",
                            type_name(other)
                        ),
                        hint,
                    )),
                })
                .collect(),
            other => Err(self.src.invalid(
                value.span(),
                format!(
                    "identity_file in {scope} must be a path, not {}",
                    match other {
                        Value::Array(_) => "an empty list",
                        other => type_name(other),
                    }
                ),
                hint,
            )),
        }
    }

    fn host_key_checking(
        &self,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<HostKeyChecking, InventoryError> {
        match value.get_ref().as_str() {
            "strict" => Ok(HostKeyChecking::Strict),
            "accept-new" => Ok(HostKeyChecking::AcceptNew),
            "off" => Ok(HostKeyChecking::Off),
            other => Err(self.src.invalid(
                value.span(),
                format!("invalid host_key_checking {other:?} in {scope}"),
                "use one of strict, accept-new, off",
            )),
        }
    }

    fn connection(
        &self,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<Connection, InventoryError> {
        match value.get_ref().as_str() {
            "ssh" => Ok(Connection::Ssh),
            "local" => Ok(Connection::Local),
            other => Err(self.src.invalid(
                value.span(),
                format!("invalid connection {other:?} in {scope}"),
                "use \"ssh\" (reach the host over SSH) or \"local\" (this machine, no SSH)",
            )),
        }
    }

    fn user(&self, scope: &str, value: &Spanned<String>) -> Result<String, InventoryError> {
        let user = value.get_ref();
        check_user(user).map_err(|refusal| {
            self.src.invalid(
                value.span(),
                format!(
                    "invalid user {} in {scope}: {}",
                    shown(user),
                    refusal.problem
                ),
                refusal.hint,
            )
        })?;
        Ok(user.clone())
    }

    /// Checks every key of one layer, whether or not a later layer overrides it: a mistake in
    /// `[defaults]` is still a mistake.
    pub fn settings(&self, scope: &str, raw: RawSettings<'_>) -> Result<Settings, InventoryError> {
        Ok(Settings {
            user: raw.user.map(|v| self.user(scope, v)).transpose()?,
            port: raw.port.map(|v| self.port(scope, v)).transpose()?,
            identity_files: raw
                .identity_file
                .map(|v| self.identity_files(scope, v))
                .transpose()?,
            host_key_checking: raw
                .host_key_checking
                .map(|v| self.host_key_checking(scope, v))
                .transpose()?,
            known_hosts: raw
                .known_hosts
                .map(|v| self.known_hosts(scope, v))
                .transpose()?,
            connect_timeout: raw
                .connect_timeout
                .map(|v| self.connect_timeout(scope, v))
                .transpose()?,
            keepalive: raw
                .keepalive
                .map(|v| self.duration("keepalive", scope, v, true))
                .transpose()?,
            become_: raw.become_.map(|v| *v.get_ref()),
            connection: raw
                .connection
                .map(|v| self.connection(scope, v))
                .transpose()?,
            proxy_jump: raw
                .proxy_jump
                .map(|v| self.proxy_jump(scope, v))
                .transpose()?,
            vars: self.vars(scope, raw.vars)?,
            collector: self.collector(scope, raw.collector)?,
        })
    }
}

/// `~` and `~/rest` expand to the home directory (`~user` is left alone, as ssh does without a
/// user database); other relative paths are taken relative to `dir`.
pub(crate) fn expand_path(raw: &str, home: Option<&Path>, dir: &Path) -> PathBuf {
    if let Some(home) = home {
        if raw == "~" {
            return home.to_path_buf();
        }
        if let Some(rest) = raw.strip_prefix("~/") {
            return home.join(rest);
        }
    }
    let path = Path::new(raw);
    if path.is_absolute() || raw.starts_with('~') {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}
