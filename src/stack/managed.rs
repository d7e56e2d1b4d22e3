//! The managed marker: the first line of every config file mp-remote writes names mp-remote and
//! holds the SHA-256 of the rest of the file, so a later run can tell three cases apart without
//! remembering anything: its own untouched file, its file edited by a person since, and a file
//! that was never its own.
//!
//! ```text
//! <!-- managed by mp-remote: sha256=<64 hex digits> -->     (XML)
//! # managed by mp-remote: sha256=<64 hex digits>            (nats-server.conf)
//! ```
//!
//! The hash covers every byte after the marker line's `\n`.

use serde::Serialize;
use sha2::{Digest, Sha256};

const TAG: &str = "managed by mp-remote: sha256=";

/// How the marker line is written: as an XML comment or as a `#` comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentStyle {
    Xml,
    Hash,
}

/// A rendered config file: `name` is its path relative to the component's config directory
/// (`config.d/mp-listen.xml` under `/etc/clickhouse-server`), `text` its whole content, marker
/// line included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedFile {
    pub name: String,
    pub text: String,
}

/// What the marker says about a file found on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ManagedState {
    /// Written by mp-remote and unchanged since.
    Intact,
    /// Has mp-remote's marker, but the content no longer matches it: a person edited it.
    Edited,
    /// No mp-remote marker on the first line: not mp-remote's file.
    Unmanaged,
}

/// `body` with the marker line for it in front.
pub(crate) fn with_marker(style: CommentStyle, body: &str) -> String {
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    match style {
        CommentStyle::Xml => format!("<!-- {TAG}{hash} -->\n{body}"),
        CommentStyle::Hash => format!("# {TAG}{hash}\n{body}"),
    }
}

/// Classifies `text` by its first line (either comment style).
pub fn managed_state(text: &str) -> ManagedState {
    let Some((first, rest)) = text.split_once('\n') else {
        return ManagedState::Unmanaged;
    };
    let first = first.strip_suffix('\r').unwrap_or(first);
    let hash = first
        .strip_prefix("<!-- ")
        .and_then(|l| l.strip_suffix(" -->"))
        .or_else(|| first.strip_prefix("# "))
        .and_then(|l| l.strip_prefix(TAG));
    match hash {
        None => ManagedState::Unmanaged,
        Some(h) if h.eq_ignore_ascii_case(&hex::encode(Sha256::digest(rest.as_bytes()))) => {
            ManagedState::Intact
        }
        Some(_) => ManagedState::Edited,
    }
}

/// True when `text` carries mp-remote's marker and is unchanged since it was written.
pub fn managed_marker_ok(text: &str) -> bool {
    managed_state(text) == ManagedState::Intact
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trip_in_both_styles() {
        for style in [CommentStyle::Xml, CommentStyle::Hash] {
            let text = with_marker(style, "line one\nline two\n");
            assert!(managed_marker_ok(&text), "{text}");
            assert_eq!(managed_state(&text), ManagedState::Intact);
        }
    }

    #[test]
    fn exact_marker_lines() {
        // printf 'x\n' | sha256sum
        let h = "73cb3858a687a8494ca3323053016282f3dad39d42cf62ca4e79dda2aac7d9ac";
        assert_eq!(
            with_marker(CommentStyle::Xml, "x\n"),
            format!("<!-- managed by mp-remote: sha256={h} -->\nx\n")
        );
        assert_eq!(
            with_marker(CommentStyle::Hash, "x\n"),
            format!("# managed by mp-remote: sha256={h}\nx\n")
        );
    }

    #[test]
    fn an_edit_anywhere_is_detected() {
        let text = with_marker(CommentStyle::Xml, "<a>1</a>\n");
        let edited = text.replace("<a>1</a>", "<a>2</a>");
        assert_eq!(managed_state(&edited), ManagedState::Edited);
        assert!(!managed_marker_ok(&edited));
        let appended = format!("{text}<b/>\n");
        assert_eq!(managed_state(&appended), ManagedState::Edited);
    }

    #[test]
    fn files_without_the_marker_are_unmanaged() {
        for text in [
            "",
            "no newline",
            "<yandex>\n</yandex>\n",
            "# some other comment\nlisten: 4222\n",
            "<!-- managed by someone else -->\n<yandex/>\n",
        ] {
            assert_eq!(managed_state(text), ManagedState::Unmanaged, "{text:?}");
            assert!(!managed_marker_ok(text));
        }
    }

    #[test]
    fn crlf_marker_line_is_accepted() {
        let text = with_marker(CommentStyle::Hash, "a: 1\r\n");
        let (first, rest) = text.split_once('\n').unwrap();
        let crlf = format!("{first}\r\n{rest}");
        assert!(managed_marker_ok(&crlf));
    }
}
