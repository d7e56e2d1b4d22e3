//! JUnit XML: one test suite per host, one test case per step, so CI systems show a deployment
//! as test results. A host that failed outside any step (unreachable, refused before its plan)
//! gets one `host` test case carrying its error.

use std::fmt::Write;

use super::command_line;
use crate::report::record::{HostRecord, HostState, RunRecord, StepRecord, StepState};

pub fn render(record: &RunRecord) -> String {
    let suites: Vec<(String, Counts)> = record.hosts.iter().map(suite).collect();
    let total = suites.iter().fold(Counts::default(), |a, (_, c)| a.add(c));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
        xml(&format!("mp-remote {} {}", command_line(record), record.id)),
        total.tests,
        total.failures,
        total.skipped,
        seconds(record.duration_ms)
    );
    for (text, _) in suites {
        out.push_str(&text);
    }
    out.push_str("</testsuites>\n");
    out
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tests: usize,
    failures: usize,
    skipped: usize,
}

impl Counts {
    fn add(self, other: &Counts) -> Counts {
        Counts {
            tests: self.tests + other.tests,
            failures: self.failures + other.failures,
            skipped: self.skipped + other.skipped,
        }
    }
}

fn suite(host: &HostRecord) -> (String, Counts) {
    let mut cases = String::new();
    let mut counts = Counts::default();
    for step in &host.steps {
        counts.tests += 1;
        cases.push_str(&case(&host.name, step, &mut counts));
    }
    let failed_step = host.steps.iter().any(|s| s.status.is_failure());
    if host.status != HostState::Ok && !failed_step {
        counts.tests += 1;
        counts.failures += 1;
        let error = host.error.as_deref().unwrap_or("no result");
        let _ = writeln!(
            cases,
            "    <testcase classname=\"{}\" name=\"host\" time=\"{}\">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
            xml(&host.name),
            seconds(host.duration_ms),
            host.status,
            xml(error),
            xml(error)
        );
    }
    let text = format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">\n{cases}  </testsuite>\n",
        xml(&host.name),
        counts.tests,
        counts.failures,
        counts.skipped,
        seconds(host.duration_ms)
    );
    (text, counts)
}

fn case(host: &str, step: &StepRecord, counts: &mut Counts) -> String {
    let open = format!(
        "    <testcase classname=\"{}.{}\" name=\"{}\" time=\"{}\"",
        xml(host),
        xml(&step.layer),
        xml(&step.step),
        seconds(step.duration_ms)
    );
    match step.status {
        StepState::Skipped => {
            counts.skipped += 1;
            format!(
                "{open}>\n      <skipped message=\"{}\"/>\n    </testcase>\n",
                xml(&step.message)
            )
        }
        status if status.is_failure() => {
            counts.failures += 1;
            let mut body = step.message.clone();
            if let Some(hint) = &step.hint {
                body.push_str(&format!("\nhint: {hint}"));
            }
            if !step.output_tail.is_empty() {
                body.push_str(&format!("\n\n{}", step.output_tail));
            }
            let message = match &step.hint {
                Some(hint) => format!("{}; {hint}", step.message),
                None => step.message.clone(),
            };
            format!(
                "{open}>\n      <failure type=\"{status}\" message=\"{}\">{}</failure>\n    </testcase>\n",
                xml(&message),
                xml(&body)
            )
        }
        _ if step.changes.is_empty() => format!("{open}/>\n"),
        _ => format!(
            "{open}>\n      <system-out>{}</system-out>\n    </testcase>\n",
            xml(&format!("{}\n{}", step.message, step.changes.join("\n")))
        ),
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Text for XML attributes and content; control characters other than tab and newline are
/// not allowed in XML 1.0 and are dropped.
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push('\t'),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    #[test]
    fn one_case_per_host_and_step() {
        let expected = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="mp-remote deploy 20240102-030405-7" tests="5" failures="2" errors="0" skipped="1" time="5.000">
  <testsuite name="h1" tests="4" failures="1" errors="0" skipped="1" time="4.000">
    <testcase classname="h1.detect" name="detect.ports" time="0.200"/>
    <testcase classname="h1.install" name="install.nats" time="1.300">
      <system-out>install.nats changed&#10;install nats-server</system-out>
    </testcase>
    <testcase classname="h1.install" name="install.clickhouse" time="2.500">
      <failure type="failed" message="apt-get failed; free disk space &amp; retry">apt-get failed&#10;hint: free disk space &amp; retry&#10;&#10;E: &lt;disk&gt; full</failure>
    </testcase>
    <testcase classname="h1.init" name="init.schema" time="0.000">
      <skipped message="init.schema skipped"/>
    </testcase>
  </testsuite>
  <testsuite name="h2" tests="1" failures="1" errors="0" skipped="0" time="0.010">
    <testcase classname="h2" name="host" time="0.010">
      <failure type="unreachable" message="h2: cannot connect to 10.0.0.2:22: connection refused">h2: cannot connect to 10.0.0.2:22: connection refused</failure>
    </testcase>
  </testsuite>
</testsuites>
"#;
        assert_eq!(render(&sample()), expected);
    }

    #[test]
    fn escapes_and_drops_control_characters() {
        assert_eq!(
            xml("a<b>&\"c'\x1b[0m\n"),
            "a&lt;b&gt;&amp;&quot;c&apos;[0m&#10;"
        );
    }
}
