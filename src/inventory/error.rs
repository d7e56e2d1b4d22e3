//! Inventory errors. Every problem found in a file carries a [`Location`] (file, 1-based line and
//! column, the offending source line) so the user can jump straight to it; `Display` renders it
//! like rustc: `file:line:col: message: hint`, then the line with a caret underneath.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where in which file a problem is, with enough of the source to draw a caret under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, counted in characters (not bytes).
    pub column: usize,
    /// The whole source line the column points into, without its line break.
    pub source_line: String,
    /// How many characters to underline (at least 1, never past the end of the line).
    pub width: usize,
}

impl Location {
    /// Turns a byte span of `source` into a line/column location. Out-of-range or mid-character
    /// spans are clamped rather than trusted, so a bad span can never panic.
    pub fn from_span(path: &Path, source: &str, span: Range<usize>) -> Location {
        let mut start = span.start.min(source.len());
        while !source.is_char_boundary(start) {
            start -= 1;
        }
        let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = source[start..]
            .find('\n')
            .map_or(source.len(), |i| start + i);
        let source_line = source[line_start..line_end].trim_end_matches('\r');
        let line = source[..start].matches('\n').count() + 1;
        let column = source[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let width = source
            .get(start..end)
            .map_or(1, |s| s.chars().count())
            .max(1);
        Location {
            path: path.to_path_buf(),
            line,
            column,
            source_line: source_line.to_string(),
            width,
        }
    }

    /// A location with no source to show (line 1, column 1), for problems that belong to the
    /// file as a whole, such as an inventory without hosts.
    pub fn start_of(path: &Path, source: &str) -> Location {
        Location::from_span(path, source, 0..0)
    }
}

impl fmt::Display for Location {
    /// `path:line:col` only; the snippet is drawn by [`InventoryError`]'s `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// The most of a source line a snippet shows: around the column, with `...` where cut.
const SNIPPET_CHARS: usize = 120;

/// A character as the terminal should get it: control characters (other than tab) escaped,
/// so that the inventory can never move the cursor or change colours.
fn printable(c: char) -> String {
    if c.is_control() && c != '\t' {
        c.escape_default().collect()
    } else {
        c.to_string()
    }
}

/// `text` with its control characters escaped (see [`printable`]): for values that did not
/// go through the inventory's checks, such as what `~/.ssh/config` filled in.
pub fn escape_controls(text: &str) -> String {
    text.chars().map(printable).collect()
}

/// The source line and a caret line, indented by the width of the line number (like rustc).
fn snippet(at: &Location) -> String {
    let number = at.line.to_string();
    let gutter = " ".repeat(number.len() + 1);
    let chars: Vec<char> = at.source_line.chars().collect();
    let column = at.column.saturating_sub(1).min(chars.len());
    let start = if chars.len() <= SNIPPET_CHARS {
        0
    } else {
        column
            .saturating_sub(SNIPPET_CHARS / 2)
            .min(chars.len() - SNIPPET_CHARS)
    };
    let end = (start + SNIPPET_CHARS).min(chars.len());
    let lead = if start > 0 { "..." } else { "" };
    let trail = if end < chars.len() { "..." } else { "" };
    let shown: String = chars[start..end].iter().map(|c| printable(*c)).collect();
    // Copy tabs from the source so the caret lines up however the terminal renders them.
    let pad: String = " ".repeat(lead.len())
        + &chars[start..column]
            .iter()
            .map(|c| match c {
                '\t' => "\t".to_string(),
                c => " ".repeat(printable(*c).chars().count()),
            })
            .collect::<String>();
    let width = at.width.min(end.saturating_sub(column)).max(1);
    format!(
        "\n{gutter}|\n{number} | {lead}{shown}{trail}\n{gutter}| {pad}{}",
        "^".repeat(width)
    )
}

fn located(at: &Location, message: &str, hint: &str) -> String {
    if hint.is_empty() {
        format!("{at}: {message}{}", snippet(at))
    } else {
        format!("{at}: {message}: {hint}{}", snippet(at))
    }
}

/// Up to 8 names, then "(and N more)": for "use one of …" hints.
pub(crate) fn known_list<S: AsRef<str>>(known: &[S]) -> String {
    const SHOWN: usize = 8;
    let mut list = known
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        list.push_str(&format!(" (and {} more)", known.len() - SHOWN));
    }
    list
}

/// Everything that can go wrong loading an inventory or selecting hosts from it.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The inventory (or the ssh config) could not be read at all.
    #[error("{}: cannot read {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        /// "the inventory" or "the ssh config".
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key/value has the wrong shape (unknown key, wrong type,
    /// missing key); found by the TOML parser.
    #[error("{}", located(at, message, hint))]
    Syntax {
        at: Box<Location>,
        message: String,
        hint: String,
    },
    /// The file is valid TOML but a value makes no sense (bad port, unknown role, missing host…).
    #[error("{}", located(at, message, hint))]
    Invalid {
        at: Box<Location>,
        message: String,
        hint: String,
    },
    /// Hosts that reach each other through `proxy_jump` in a circle.
    #[error(
        "{}",
        located(
            at,
            &format!("proxy_jump loop: {}", cycle.join(" -> ")),
            "break the loop: one of these hosts must be reachable without a jump (proxy_jump here, or ProxyJump in ~/.ssh/config)"
        )
    )]
    ProxyJumpLoop {
        at: Box<Location>,
        cycle: Vec<String>,
    },
    /// `~/.ssh/config` could not be parsed.
    #[error(
        "{}",
        located(at, message, "fix or remove this line (ssh reads the same file)")
    )]
    SshConfig { at: Box<Location>, message: String },
    /// A `--limit` term selects nothing.
    #[error(
        "--limit term {term:?} matches no host or group: use one of {}",
        known_list(known)
    )]
    LimitNoMatch { term: String, known: Vec<String> },
    /// A `--limit` term that cannot be understood (bad glob, unknown role, empty).
    #[error("--limit term {term:?} is invalid: {message}")]
    LimitInvalid { term: String, message: String },
    /// The terms each matched something, but together they leave no host.
    #[error("--limit {pattern:?} selects no hosts: the exclusions (!) and intersections (&) remove every host")]
    LimitEmpty { pattern: String },
}

impl InventoryError {
    /// File, line and column (1-based) of the problem, for errors that come from a file.
    pub fn location(&self) -> Option<(PathBuf, usize, usize)> {
        match self {
            InventoryError::Syntax { at, .. }
            | InventoryError::Invalid { at, .. }
            | InventoryError::ProxyJumpLoop { at, .. }
            | InventoryError::SshConfig { at, .. } => Some((at.path.clone(), at.line, at.column)),
            InventoryError::Io { .. }
            | InventoryError::LimitNoMatch { .. }
            | InventoryError::LimitInvalid { .. }
            | InventoryError::LimitEmpty { .. } => None,
        }
    }

    /// The first line of the message (no snippet), for one-line reports and logs.
    pub fn summary(&self) -> String {
        let text = self.to_string();
        text.lines().next().unwrap_or_default().to_string()
    }
}

/// Builds located errors for one source file.
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn at(&self, span: Range<usize>) -> Box<Location> {
        Box::new(Location::from_span(self.path, self.text, span))
    }

    pub fn invalid(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> InventoryError {
        InventoryError::Invalid {
            at: self.at(span),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Converts a TOML parser error, rewording serde's messages into `message: what to do`.
    pub fn syntax(&self, err: &toml::de::Error) -> InventoryError {
        let raw = err.message().trim().replace('\n', "; ");
        let (mut message, hint) = reword_toml_message(&raw);
        if message == "duplicate key" {
            if let Some(key) = err.span().and_then(|span| self.text.get(span)) {
                message = format!("duplicate key {:?}", key.trim_matches('"'));
            }
        }
        InventoryError::Syntax {
            at: self.at(err.span().unwrap_or(0..0)),
            message,
            hint,
        }
    }
}

/// serde/toml say `unknown field `x`, expected one of `a`, `b``; the inventory speaks of keys
/// and always says what to do about it.
fn reword_toml_message(raw: &str) -> (String, String) {
    let unquote = |s: &str| s.replace('`', "");
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let (name, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let name = unquote(name);
        let expected = unquote(expected.trim_start_matches("one of "));
        let hint = if expected.is_empty() || expected.starts_with("nothing") {
            "remove it".to_string()
        } else {
            format!("remove it or use one of {expected}")
        };
        return (format!("unknown key {name:?}"), hint);
    }
    if let Some(rest) = raw.strip_prefix("missing field ") {
        let name = unquote(rest);
        return (
            format!("missing key {name:?}"),
            format!("add {name} = ... to this table"),
        );
    }
    if raw.starts_with("duplicate key") {
        return (raw.to_string(), "keep only one of them".to_string());
    }
    if raw.starts_with("invalid type") || raw.starts_with("invalid value") {
        let hint = if raw.ends_with("expected a boolean") {
            "write true or false (no quotes)"
        } else if raw.ends_with("expected a string") {
            "write a quoted string, e.g. \"value\""
        } else if raw.ends_with("expected a sequence") {
            "write a list, e.g. [\"a\", \"b\"]"
        } else if raw.contains("expected a map") || raw.contains("expected struct") {
            "write a table, e.g. { key = \"value\" } or a [section]"
        } else {
            "change the value to the expected type"
        };
        return (raw.replace('`', ""), hint.to_string());
    }
    (
        format!("invalid TOML: {raw}"),
        "fix the syntax here".to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_characters_and_clamps() {
        let src = "a = 1\nb = \"é\" x\n";
        let at = Location::from_span(Path::new("f.toml"), src, 14..15);
        assert_eq!((at.line, at.column), (2, 8));
        assert_eq!(at.source_line, "b = \"é\" x");
        let at = Location::from_span(Path::new("f.toml"), src, 500..900);
        assert_eq!((at.line, at.column, at.width), (3, 1, 1));
        // Not a char boundary (inside é): no panic, moved back.
        let at = Location::from_span(Path::new("f.toml"), src, 12..13);
        assert_eq!((at.line, at.column), (2, 6));
    }

    #[test]
    fn snippet_escapes_control_characters_and_cuts_long_lines() {
        let src = "name = \"\u{1b}[31mred\" # x\n";
        let err = Source {
            path: Path::new("i.toml"),
            text: src,
        }
        .invalid(7..8, "bad", "");
        assert_eq!(escape_controls("a\u{1b}b\tc"), "a\\u{1b}b\tc");
        let text = err.to_string();
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(text.contains("\\u{1b}[31mred"), "{text}");

        let long = format!("name = \"{}\"", "a".repeat(70_000));
        let err = Source {
            path: Path::new("i.toml"),
            text: &long,
        }
        .invalid(7..long.len(), "too long", "");
        let text = err.to_string();
        assert!(text.len() < 1_000, "{}", text.len());
        assert!(text.contains("\"aaa") && text.contains("aaa..."), "{text}");
    }

    #[test]
    fn snippet_draws_a_caret() {
        let src = "[[hosts]]\nroles = [\"natz\"]\n";
        let err = Source {
            path: Path::new("inventory/x.toml"),
            text: src,
        }
        .invalid(19..25, "unknown role \"natz\"", "use one of nats");
        assert_eq!(
            err.to_string(),
            "inventory/x.toml:2:10: unknown role \"natz\": use one of nats\n  |\n2 | roles = [\"natz\"]\n  |          ^^^^^^"
        );
        assert_eq!(
            err.location(),
            Some((PathBuf::from("inventory/x.toml"), 2, 10))
        );
    }
}
