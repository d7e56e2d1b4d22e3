//! Prometheus text exposition (format 0.0.4), written by hand: a handful of counters and
//! gauges do not need a metrics crate.

use std::fmt::Write;

/// One scrape's text, built metric by metric.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter without labels.
    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, help, "counter", &[(None, value as f64)]);
    }

    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: f64) {
        self.family(name, help, "gauge", &[(None, value)]);
    }

    /// A counter with one label, one sample per label value.
    pub fn labelled_counter(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: &[(&str, u64)],
    ) {
        let samples: Vec<_> = values
            .iter()
            .map(|(v, n)| (Some((label, *v)), *n as f64))
            .collect();
        self.family(name, help, "counter", &samples);
    }

    /// A gauge with one label, one sample per label value.
    pub fn labelled_gauge(&mut self, name: &str, help: &str, label: &str, values: &[(&str, f64)]) {
        let samples: Vec<_> = values
            .iter()
            .map(|(v, n)| (Some((label, *v)), *n))
            .collect();
        self.family(name, help, "gauge", &samples);
    }

    pub fn finish(self) -> String {
        self.text
    }

    fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: &str,
        samples: &[(Option<(&str, &str)>, f64)],
    ) {
        // Writing into a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
        for (label, value) in samples {
            match label {
                Some((key, v)) => {
                    let _ = writeln!(self.text, "{name}{{{key}=\"{}\"}} {value}", escape(v));
                }
                None => {
                    let _ = writeln!(self.text, "{name} {value}");
                }
            }
        }
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let mut e = Exposition::new();
        e.labelled_counter(
            "mp_collector_published_total",
            "Messages acked by JetStream.",
            "data_type",
            &[("trade", 3), ("orderbook", 1)],
        );
        e.gauge("mp_collector_buffered", "Messages not acked yet.", 2.0);
        assert_eq!(
            e.finish(),
            "# HELP mp_collector_published_total Messages acked by JetStream.\n\
             # TYPE mp_collector_published_total counter\n\
             mp_collector_published_total{data_type=\"trade\"} 3\n\
             mp_collector_published_total{data_type=\"orderbook\"} 1\n\
             # HELP mp_collector_buffered Messages not acked yet.\n\
             # TYPE mp_collector_buffered gauge\n\
             mp_collector_buffered 2\n"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
