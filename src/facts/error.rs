//! Why probe output could not be turned into [`Facts`](super::Facts). Messages quote the output
//! because the usual causes (a login banner, a shell that is not sh, a dropped connection) are
//! obvious from it and invisible otherwise.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FactsError {
    #[error(
        "probe output is empty: the facts probe printed nothing (did `sh` start on the host?)"
    )]
    Empty,

    #[error(
        "probe output has no `mp_facts=` line, so it is not from the mp-remote facts probe \
         (wrong shell, or the command was not run); first lines were: {head}"
    )]
    NotProbeOutput { head: String },

    #[error(
        "probe output is in format `mp_facts={0}`, but this mp-remote only understands format 1"
    )]
    UnsupportedFormat(String),

    #[error(
        "probe output is cut off inside its `--- {section} ---` section after {lines} lines: the \
         probe script did not run to its end (killed, timed out or connection lost); last line \
         was: {last}"
    )]
    UnclosedSection {
        section: String,
        lines: usize,
        last: String,
    },

    #[error(
        "probe output has no `probe_end=ok` line: the probe script did not run to its end (killed, \
         timed out or connection lost) after {lines} lines; last line was: {last}"
    )]
    Truncated { lines: usize, last: String },

    #[error("probe output has no `{key}=` line, or it is empty ({why}); first lines were: {head}")]
    MissingKey {
        key: &'static str,
        why: &'static str,
        head: String,
    },

    #[error(
        "probe output has neither an `--- os-release ---` nor a `--- sw_vers ---` section, so \
         the OS is unknown (no /etc/os-release on the host?); first lines were: {head}"
    )]
    MissingOs { head: String },

    #[error("probe output line `{key}={value}` is invalid: expected {expected}")]
    BadValue {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}
