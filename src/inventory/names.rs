//! Names of hosts, groups and services: what they may hold, and how long they may be. They
//! end up in shell commands, file names (a run's `hosts/NAME.log`), `--limit` and messages.

use toml::Spanned;

use super::error::InventoryError;
use super::validate::Checker;

/// The longest name: DNS's 63 characters per label, and in all what leaves room for
/// `.log` in a 255-byte file name (`hosts/NAME.log` of a run record).
const MAX_LABEL: usize = 63;
const MAX_NAME: usize = 251;

/// A value for a message: quoted and escaped, and cut after 40 characters so that a huge
/// value cannot flood the terminal.
pub(crate) fn shown(value: &str) -> String {
    const SHOWN: usize = 40;
    match value.char_indices().nth(SHOWN) {
        None => format!("{value:?}"),
        Some((cut, _)) => format!(
            "{:?}... ({} characters)",
            &value[..cut],
            value.chars().count()
        ),
    }
}

/// Characters allowed in host and group names: safe in shell commands, file names and --limit.
fn name_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

impl Checker<'_> {
    /// A host, group or service name: non-empty, `[A-Za-z0-9._-]` only, within the lengths
    /// above; a group may not be called `all`.
    pub fn name(&self, kind: &str, name: &Spanned<String>) -> Result<(), InventoryError> {
        let value = name.get_ref();
        if value.is_empty() {
            return Err(self.src.invalid(
                name.span(),
                format!("empty {kind} name"),
                "use letters, digits, '.', '_' or '-', e.g. \"mp-1\"",
            ));
        }
        if let Some(bad) = value.chars().find(|c| !name_char_ok(*c)) {
            return Err(self.src.invalid(
                name.span(),
                format!(
                    "invalid {kind} name {}: {bad:?} is not allowed",
                    shown(value)
                ),
                "use only letters, digits, '.', '_' and '-'",
            ));
        }
        if value.len() > MAX_NAME || value.split('.').any(|label| label.len() > MAX_LABEL) {
            return Err(self.src.invalid(
                name.span(),
                format!("{kind} name {} is too long", shown(value)),
                format!("use at most {MAX_LABEL} characters between dots and {MAX_NAME} in all: the name is a DNS-like label and names the host's log file"),
            ));
        }
        // `--limit all` takes an exact name first: a group "all" would quietly narrow what
        // everyone reads as every host. A host "all" is selectable on its own, so it may be
        // meant; it is worth a word.
        if value == "all" && kind == "group" {
            return Err(self.src.invalid(
                name.span(),
                "group name \"all\" is reserved",
                "rename the group: --limit all must select every host, not this group",
            ));
        }
        if value == "all" && kind == "host" {
            self.warn(
                name.span(),
                "host name \"all\" shadows --limit all",
                "--limit all selects only this host, not every host; rename it to avoid surprises",
            );
        }
        Ok(())
    }
}
