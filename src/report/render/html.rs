//! One self-contained HTML page (inline CSS, no scripts, no external assets): the run's
//! summary, then per host its facts, a timeline of its steps drawn as SVG (bars placed by
//! start and duration, coloured by status) and a table of its steps.

use std::fmt::Write;

use super::junit::xml as esc;
use super::{command_line, data_line, facts_line, secs, services_line, versions_line};
use crate::report::record::{HostRecord, HostState, RunRecord, StepState};

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px}
.meta{color:#555;margin:0 0 16px}
table{border-collapse:collapse;margin:8px 0}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right}
.badge{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.ok{background:#2e7d32}.changed{background:#e69500}.skipped{background:#9e9e9e}
.failed,.unreachable,.timed_out,.interrupted,.error{background:#c62828}
.running,.unknown{background:#6a5acd}
td .badge,h1 .badge,h2 .badge{vertical-align:middle}
ul.failures li{margin:4px 0}.hint{color:#555}
pre{background:#f7f7f7;padding:4px;margin:2px 0;white-space:pre-wrap}
dl.facts{display:grid;grid-template-columns:max-content auto;gap:2px 12px;margin:4px 0}
dl.facts dt{color:#555}dl.facts dd{margin:0}
svg.timeline{display:block;margin:8px 0;font:11px monospace}
svg.timeline .bar.ok{fill:#2e7d32}svg.timeline .bar.changed{fill:#e69500}
svg.timeline .bar.skipped{fill:#9e9e9e}svg.timeline .bar.running,svg.timeline .bar.unknown{fill:#6a5acd}
svg.timeline .bar.failed,svg.timeline .bar.unreachable,svg.timeline .bar.timed_out,svg.timeline .bar.interrupted{fill:#c62828}
svg.timeline .grid{stroke:#ddd}
";

pub fn render(record: &RunRecord) -> String {
    let title = format!(
        "mp-remote {} {}: {}",
        command_line(record),
        record.id,
        record.result
    );
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>\n{STYLE}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(
        out,
        "<header>\n<h1>mp-remote {} <span class=\"badge {r}\" id=\"result\">{r}</span></h1>",
        esc(&command_line(record)),
        r = record.result
    );
    let _ = writeln!(
        out,
        "<p class=\"meta\">run {} &middot; started {} &middot; {} &middot; exit {} &middot; inventory {} (sha256 {}){}</p>\n</header>",
        esc(&record.id),
        esc(&record.started),
        secs(record.duration_ms),
        record
            .exit_code
            .map(|c| c.to_string())
            .unwrap_or_else(|| "-".into()),
        esc(&record.inventory.path),
        esc(&record.inventory.sha256),
        if record.interrupted {
            " &middot; <strong>interrupted</strong>"
        } else {
            ""
        }
    );
    out.push_str(&summary(record));
    for host in &record.hosts {
        out.push_str(&host_section(host));
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn summary(record: &RunRecord) -> String {
    let mut out = String::from("<section id=\"summary\">\n<h2>Summary</h2>\n<table class=\"summary\">\n<thead><tr><th>Host</th><th>Status</th><th>OK</th><th>Changed</th><th>Failed</th><th>Skipped</th><th>Unreachable</th><th>Time</th><th>Versions</th></tr></thead>\n<tbody>\n");
    for h in &record.hosts {
        let _ = writeln!(
            out,
            "<tr class=\"host-row\"><td><a href=\"#{}\">{}</a></td><td><span class=\"badge {s}\">{s}</span></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            anchor(&h.name),
            esc(&h.name),
            h.count(StepState::Ok),
            h.count(StepState::Changed),
            h.failed_steps(),
            h.count(StepState::Skipped),
            usize::from(h.status == HostState::Unreachable),
            secs(h.duration_ms),
            esc(&versions_line(h)),
            s = h.status
        );
    }
    out.push_str("</tbody>\n</table>\n");
    let failed: Vec<&HostRecord> = record.hosts.iter().filter(|h| h.error.is_some()).collect();
    if record.error.is_some() || !failed.is_empty() {
        out.push_str("<ul class=\"failures\">\n");
        if let Some(error) = &record.error {
            let _ = writeln!(out, "<li>{}</li>", esc(error));
        }
        for h in failed {
            let _ = write!(
                out,
                "<li class=\"failure\"><span class=\"badge {s}\">{s}</span> {}",
                esc(h.error.as_deref().unwrap_or_default()),
                s = h.status
            );
            for hint in h.steps.iter().filter_map(|s| s.hint.as_ref()) {
                let _ = write!(out, "<br><span class=\"hint\">hint: {}</span>", esc(hint));
            }
            out.push_str("</li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</section>\n");
    out
}

fn host_section(h: &HostRecord) -> String {
    let mut out = format!(
        "<section class=\"host\" id=\"{}\">\n<h2>{} <span class=\"badge {s}\">{s}</span> {}</h2>\n",
        anchor(&h.name),
        esc(&h.name),
        secs(h.duration_ms),
        s = h.status
    );
    let facts = [
        ("facts", facts_line(h).unwrap_or_default()),
        ("versions", versions_line(h)),
        ("services", services_line(h)),
        ("data", data_line(h)),
        ("error", h.error.clone().unwrap_or_default()),
        ("log", h.log.clone()),
    ];
    out.push_str("<dl class=\"facts\">");
    for (label, value) in facts.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "<dt>{label}</dt><dd>{}</dd>", esc(value));
    }
    out.push_str("</dl>\n");
    if h.steps.is_empty() {
        out.push_str("</section>\n");
        return out;
    }
    out.push_str(&timeline(h));
    out.push_str("<table class=\"steps\">\n<thead><tr><th>Layer</th><th>Step</th><th>Status</th><th>Start</th><th>Time</th><th>Message</th></tr></thead>\n<tbody>\n");
    for s in &h.steps {
        let mut message = esc(&s.message);
        for change in &s.changes {
            let _ = write!(message, "<br>- {}", esc(change));
        }
        if s.status.is_failure() && !s.output_tail.is_empty() {
            let _ = write!(message, "<pre>{}</pre>", esc_pre(&s.output_tail));
        }
        if let Some(hint) = &s.hint {
            let _ = write!(
                message,
                "<br><span class=\"hint\">hint: {}</span>",
                esc(hint)
            );
        }
        let _ = writeln!(
            out,
            "<tr class=\"step\"><td>{}</td><td>{}</td><td><span class=\"badge {st}\">{st}</span></td><td class=\"n\">+{}</td><td class=\"n\">{}</td><td>{message}</td></tr>",
            esc(&s.layer),
            esc(&s.step),
            secs(s.offset_ms),
            secs(s.duration_ms),
            st = s.status
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
    out
}

const LABEL_WIDTH: f64 = 260.0;
const BAR_AREA: f64 = 620.0;
const ROW: f64 = 18.0;
const AXIS: f64 = 20.0;

/// The steps of one host as horizontal bars over time, one row per step.
pub fn timeline(h: &HostRecord) -> String {
    let t0 = h.steps.iter().map(|s| s.offset_ms).min().unwrap_or(0);
    let end = h
        .steps
        .iter()
        .map(|s| s.offset_ms + s.duration_ms)
        .max()
        .unwrap_or(0);
    let span = (end - t0).max(1) as f64;
    let width = LABEL_WIDTH + BAR_AREA + 20.0;
    let height = AXIS + ROW * h.steps.len() as f64 + 4.0;
    let mut out = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"timeline of {}\">\n",
        esc(&h.name)
    );
    for i in 0..=4 {
        let x = LABEL_WIDTH + BAR_AREA * f64::from(i) / 4.0;
        let at = span * f64::from(i) / 4.0;
        // Short runs need the hundredths to tell the ticks apart.
        let label = if span < 10_000.0 {
            format!("{:.2}s", at / 1000.0)
        } else {
            secs(at as u64)
        };
        let _ = writeln!(
            out,
            "<line class=\"grid\" x1=\"{x:.1}\" y1=\"{AXIS}\" x2=\"{x:.1}\" y2=\"{height}\"/><text x=\"{x:.1}\" y=\"12\" text-anchor=\"middle\">{label}</text>"
        );
    }
    for (i, s) in h.steps.iter().enumerate() {
        let y = AXIS + ROW * i as f64;
        let x = LABEL_WIDTH + (s.offset_ms - t0) as f64 / span * BAR_AREA;
        let w = (s.duration_ms as f64 / span * BAR_AREA).max(1.5);
        let label: String = if s.step.chars().count() > 38 {
            s.step.chars().take(37).chain(['…']).collect()
        } else {
            s.step.clone()
        };
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\">{}</text><rect class=\"bar {st}\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{} {}: {st}, {} at +{}</title></rect>",
            y + 13.0,
            esc(&label),
            y + 3.0,
            ROW - 5.0,
            esc(&s.layer),
            esc(&s.step),
            secs(s.duration_ms),
            secs(s.offset_ms),
            st = s.status
        );
    }
    out.push_str("</svg>\n");
    out
}

/// `host-<name>`, with anything but `[A-Za-z0-9_-]` as `_`.
fn anchor(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("host-{safe}")
}

/// Like [`esc`] but keeps the newlines (inside `<pre>`).
fn esc_pre(text: &str) -> String {
    text.lines().map(esc).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::sample;
    use super::*;

    #[test]
    fn timeline_places_bars_by_start_and_duration() {
        let expected = r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="900" height="96" viewBox="0 0 900 96" role="img" aria-label="timeline of h1">
<line class="grid" x1="260.0" y1="20" x2="260.0" y2="96"/><text x="260.0" y="12" text-anchor="middle">0.00s</text>
<line class="grid" x1="415.0" y1="20" x2="415.0" y2="96"/><text x="415.0" y="12" text-anchor="middle">1.00s</text>
<line class="grid" x1="570.0" y1="20" x2="570.0" y2="96"/><text x="570.0" y="12" text-anchor="middle">2.00s</text>
<line class="grid" x1="725.0" y1="20" x2="725.0" y2="96"/><text x="725.0" y="12" text-anchor="middle">3.00s</text>
<line class="grid" x1="880.0" y1="20" x2="880.0" y2="96"/><text x="880.0" y="12" text-anchor="middle">4.00s</text>
<text x="4" y="33.0">detect.ports</text><rect class="bar ok" x="260.0" y="23.0" width="31.0" height="13.0"><title>detect detect.ports: ok, 0.2s at +0.0s</title></rect>
<text x="4" y="51.0">install.nats</text><rect class="bar changed" x="291.0" y="41.0" width="201.5" height="13.0"><title>install install.nats: changed, 1.3s at +0.2s</title></rect>
<text x="4" y="69.0">install.clickhouse</text><rect class="bar failed" x="492.5" y="59.0" width="387.5" height="13.0"><title>install install.clickhouse: failed, 2.5s at +1.5s</title></rect>
<text x="4" y="87.0">init.schema</text><rect class="bar skipped" x="880.0" y="77.0" width="1.5" height="13.0"><title>init init.schema: skipped, 0.0s at +4.0s</title></rect>
</svg>
"#;
        assert_eq!(timeline(&sample().hosts[0]), expected);
    }

    #[test]
    fn page_is_self_contained() {
        let page = render(&sample());
        assert!(page.starts_with("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>mp-remote deploy 20240102-030405-7: failed</title>\n<style>\n"));
        assert!(page.contains("<tr class=\"host-row\"><td><a href=\"#host-h1\">h1</a></td><td><span class=\"badge failed\">failed</span></td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">1</td><td class=\"n\">0</td><td class=\"n\">4.0s</td><td>nats-server 2.9.10</td></tr>\n"), "{page}");
        assert!(page.contains("<li class=\"failure\"><span class=\"badge failed\">failed</span> h1: install install.clickhouse: apt-get failed; free disk space &amp; retry<br><span class=\"hint\">hint: free disk space &amp; retry</span></li>\n"));
        assert!(page.contains("<section class=\"host\" id=\"host-h2\">\n<h2>h2 <span class=\"badge unreachable\">unreachable</span> 0.0s</h2>\n"));
        assert!(page.contains("<pre>E: &lt;disk&gt; full</pre>"));
        assert_eq!(
            page.matches("<svg class=\"timeline\"").count(),
            1,
            "h2 has no steps"
        );
        // No scripts, nothing fetched: the only URL is the SVG namespace.
        assert!(!page.contains("<script") && !page.contains("<link") && !page.contains("src="));
        assert_eq!(page.matches("http").count(), 1);
        assert!(page.ends_with("</body>\n</html>\n"));
    }
}
