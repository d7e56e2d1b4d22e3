//! `vars`: the few pipeline settings a host, a group or `[defaults]` may change. They are a
//! known set, each checked where it is written, so that a misspelt name or a bad value stops
//! `inventory check` instead of being ignored or failing a deploy after it connected.

use toml::{Table, Value};

use super::error::{known_list, InventoryError};
use super::model::RawVars;
use super::names::shown;
use super::validate::Checker;

/// A var: its name, who reads it, and what its value must be.
struct KnownVar {
    name: &'static str,
    /// The components that read it, for the docs and messages.
    read_by: &'static str,
    check: fn(&Value) -> Result<(), String>,
}

const KNOWN: &[KnownVar] = &[
    KnownVar {
        name: "deploy_dir",
        read_by: "storage and collector releases, facts, status",
        check: deploy_dir,
    },
    KnownVar {
        name: "collector_rate",
        read_by: "collector (synthetic messages per second)",
        check: positive,
    },
    KnownVar {
        name: "nats_max_store_gib",
        read_by: "nats (JetStream file store cap, GiB)",
        check: positive,
    },
    KnownVar {
        name: "verify_timeout_secs",
        read_by: "storage and collector (how long verify waits for rows)",
        check: positive,
    },
];

/// The names of the known vars, for hints.
fn known_names() -> Vec<&'static str> {
    KNOWN.iter().map(|v| v.name).collect()
}

/// A whole number from 1 to 4294967295 (what the plan reads it into).
fn positive(value: &Value) -> Result<(), String> {
    match value {
        Value::Integer(n) if *n > 0 && u32::try_from(*n).is_ok() => Ok(()),
        Value::Integer(n) if *n > 0 => Err(format!("{n} is too large")),
        Value::Integer(n) => Err(format!("{n} is not above 0: write a whole number from 1")),
        Value::String(s) => Err(format!(
            "{} is a string: write a whole number without quotes",
            shown(s)
        )),
        other => Err(format!("{} is not a whole number", other.type_str())),
    }
}

/// An absolute directory, not `/`, of path-safe characters only: it is put in shell
/// commands, units and symlinks on every host.
fn deploy_dir(value: &Value) -> Result<(), String> {
    let hint = "write an absolute directory, e.g. \"/opt/marketprism\"";
    let Value::String(path) = value else {
        return Err(format!("{} is not a path: {hint}", value.type_str()));
    };
    if !path.starts_with('/') {
        return Err(format!("{} is not absolute: {hint}", shown(path)));
    }
    if path == "/" {
        return Err(format!("\"/\" would put releases at the root: {hint}"));
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')))
    {
        return Err(format!(
            "{} contains {c:?}: use letters, digits, '/', '.', '_' and '-'",
            shown(path)
        ));
    }
    if path[1..]
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(format!(
            "{} has an empty, '.' or '..' part: {hint}",
            shown(path)
        ));
    }
    Ok(())
}

impl Checker<'_> {
    /// One layer's vars, checked, as a plain table.
    pub(crate) fn vars(&self, scope: &str, raw: Option<&RawVars>) -> Result<Table, InventoryError> {
        let mut table = Table::new();
        for (key, value) in raw.into_iter().flatten() {
            let name = key.get_ref();
            let Some(known) = KNOWN.iter().find(|k| k.name == name) else {
                return Err(self.src.invalid(
                    key.span(),
                    format!("unknown var {} in {scope}", shown(name)),
                    format!("use one of {}", known_list(&known_names())),
                ));
            };
            (known.check)(value.get_ref()).map_err(|problem| {
                self.src.invalid(
                    value.span(),
                    format!(
                        "vars.{name} in {scope} (read by {}): {problem}",
                        known.read_by
                    ),
                    "",
                )
            })?;
            table.insert(name.clone(), value.get_ref().clone());
        }
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_dirs() {
        for ok in ["/opt/marketprism", "/srv/mp-2.1/x_y"] {
            assert_eq!(deploy_dir(&Value::String(ok.into())), Ok(()), "{ok}");
        }
        for (bad, says) in [
            ("relative/dir", "not absolute"),
            ("/", "root"),
            ("/opt/x; rm -rf /", "';'"),
            ("/opt/../etc", "'..'"),
            ("/opt//x", "empty"),
            ("/opt/x/", "empty"),
            ("/opt/\u{1b}[31m", "'\\u{1b}'"),
        ] {
            let error = deploy_dir(&Value::String(bad.into())).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        assert!(deploy_dir(&Value::Integer(42))
            .unwrap_err()
            .contains("integer"));
    }

    #[test]
    fn positive_numbers() {
        assert_eq!(positive(&Value::Integer(40)), Ok(()));
        for bad in [
            Value::Integer(0),
            Value::Integer(-1),
            Value::Integer(1 << 40),
            Value::String("fast".into()),
            Value::Float(1.5),
        ] {
            assert!(positive(&bad).is_err(), "{bad:?}");
        }
    }
}
