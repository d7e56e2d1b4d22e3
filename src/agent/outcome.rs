//! What an action returns to the runner.

use super::event::StepStatus;

/// A step that did its work: either nothing was needed (`Ok`) or something changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub status: StepStatus,
    pub message: String,
    pub changes: Vec<String>,
    pub output_tail: String,
    /// The whole output (capped at [`OUTPUT_CAP`]): the run record's host log keeps it.
    pub output: String,
    /// Numbers the report keeps (rows per table after the data-flow check).
    pub data: std::collections::BTreeMap<String, u64>,
}

impl Outcome {
    /// Already as wanted; `message` says why nothing was done.
    pub fn unchanged(message: impl Into<String>) -> Self {
        Self {
            status: StepStatus::Ok,
            message: message.into(),
            changes: Vec::new(),
            output_tail: String::new(),
            output: String::new(),
            data: Default::default(),
        }
    }

    /// Changed (or, in check mode, would change) these things.
    pub fn changed(message: impl Into<String>, changes: Vec<String>) -> Self {
        Self {
            status: StepStatus::Changed,
            message: message.into(),
            changes,
            output_tail: String::new(),
            output: String::new(),
            data: Default::default(),
        }
    }

    pub fn with_output(mut self, output: &str) -> Self {
        self.output_tail = tail(output, 20);
        self.output = capped(output);
        self
    }

    pub fn with_data(mut self, data: std::collections::BTreeMap<String, u64>) -> Self {
        self.data = data;
        self
    }
}

/// A failed step: what happened, what to do, and the last output lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepError {
    pub message: String,
    pub hint: Option<String>,
    pub output_tail: String,
    pub output: String,
}

impl StepError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            hint: None,
            output_tail: String::new(),
            output: String::new(),
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_output(mut self, output: &str) -> Self {
        self.output_tail = tail(output, 20);
        self.output = capped(output);
        self
    }
}

/// How much of a step's output travels back whole: the end of it, where errors are.
pub const OUTPUT_CAP: usize = 256 * 1024;

/// The last [`OUTPUT_CAP`] bytes of `text`, cut at a line start.
fn capped(text: &str) -> String {
    if text.len() <= OUTPUT_CAP {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_CAP;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    let rest = &text[start..];
    let rest = rest.split_once('\n').map_or(rest, |(_, after)| after);
    format!(
        "[... {} bytes before cut ...]\n{rest}",
        text.len() - rest.len()
    )
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_output_keeps_its_end_from_a_line_start() {
        let text: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        let kept = capped(&text);
        assert!(kept.len() <= OUTPUT_CAP + 64, "{}", kept.len());
        assert!(kept.starts_with("[... "), "{}", &kept[..40]);
        let first_kept = kept.lines().nth(1).unwrap();
        assert!(first_kept.starts_with("line "), "{first_kept}");
        assert!(kept.ends_with("line 99999\n"));
        assert_eq!(capped("short\n"), "short\n");
        let outcome = Outcome::unchanged("x").with_output("a\nb\n");
        assert_eq!(
            (outcome.output.as_str(), outcome.output_tail.as_str()),
            ("a\nb\n", "a\nb")
        );
    }
}
