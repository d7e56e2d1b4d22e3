//! What the terminal shows while a run goes on, built from the same events as the record.
//! Pure: times are offsets from the run's start, passed in by the caller.
//!
//! - on a TTY, [`LiveState::view`]: a summary line (hosts done, by status; hosts running),
//!   then one line per running host (layer, step, elapsed), the slowest first, at most a
//!   screenful, so that 100 hosts stay readable;
//! - without one, [`LiveState::heartbeat`]: one line naming the hosts still running.

use std::collections::BTreeMap;
use std::time::Duration;

use super::record::HostState;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Running {
    layer: String,
    step: String,
    /// When the host started (first seen), and its current step.
    since: Duration,
    step_since: Duration,
    /// Its batch in a rolling run.
    batch: Option<usize>,
}

#[derive(Debug, Clone, Default)]
pub struct LiveState {
    command: String,
    total: usize,
    running: BTreeMap<String, Running>,
    done: BTreeMap<String, HostState>,
}

impl LiveState {
    /// Every host starts out running (connecting, then detecting).
    pub fn new(command: &str, hosts: impl IntoIterator<Item = String>) -> Self {
        let running: BTreeMap<String, Running> = hosts
            .into_iter()
            .map(|h| {
                let r = Running {
                    layer: "detect".into(),
                    step: "connect".into(),
                    since: Duration::ZERO,
                    step_since: Duration::ZERO,
                    batch: None,
                };
                (h, r)
            })
            .collect();
        Self {
            command: command.to_string(),
            total: running.len(),
            running,
            done: BTreeMap::new(),
        }
    }

    pub fn step_started(&mut self, host: &str, layer: &str, step: &str, at: Duration) {
        if let Some(r) = self.running.get_mut(host) {
            r.layer = layer.to_string();
            r.step = step.to_string();
            r.step_since = at;
        }
    }

    /// A rolling run placed the host in `batch`; until the batch starts it waits.
    pub fn batch(&mut self, host: &str, batch: usize, started: bool, at: Duration) {
        if let Some(r) = self.running.get_mut(host) {
            r.batch = Some(batch);
            if !started {
                r.layer = "waiting".into();
                r.step = format!("for batch {batch}");
                r.step_since = at;
            }
        }
    }

    pub fn host_done(&mut self, host: &str, state: HostState) {
        if self.running.remove(host).is_some() || !self.done.contains_key(host) {
            self.done.insert(host.to_string(), state);
        }
        self.total = self.total.max(self.done.len() + self.running.len());
    }

    pub fn running_hosts(&self) -> impl Iterator<Item = &str> {
        self.running.keys().map(String::as_str)
    }

    /// `deploy 1m02s · 37/100 hosts done: 35 ok, 2 failed · 63 running`
    pub fn summary(&self, now: Duration) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for state in self.done.values() {
            *counts.entry(state.as_str()).or_default() += 1;
        }
        let by_state: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        let mut line = format!(
            "{} {} · {}/{} hosts done",
            self.command,
            elapsed(now),
            self.done.len(),
            self.total
        );
        if !by_state.is_empty() {
            line.push_str(&format!(": {}", by_state.join(", ")));
        }
        if !self.running.is_empty() {
            line.push_str(&format!(" · {} running", self.running.len()));
        }
        line
    }

    /// The summary, then at most `max_hosts` running hosts, those at it longest first (ties
    /// by name), then how many more.
    pub fn view(&self, now: Duration, max_hosts: usize) -> Vec<String> {
        let mut lines = vec![self.summary(now)];
        let width = self
            .running
            .keys()
            .map(String::len)
            .max()
            .unwrap_or(0)
            .clamp(8, crate::report::render::text::MAX_COLUMN);
        for (host, r) in self.slowest().into_iter().take(max_hosts) {
            let layer = match r.batch {
                Some(b) => format!("b{b} {}", r.layer),
                None => r.layer.clone(),
            };
            lines.push(format!(
                "  {host:<width$} {:<8} {:<34} {:>7}",
                layer,
                r.step,
                elapsed(now.saturating_sub(r.step_since))
            ));
        }
        if self.running.len() > max_hosts {
            lines.push(format!(
                "  … and {} more running",
                self.running.len() - max_hosts
            ));
        }
        lines
    }

    /// `still running (3/100): h7 install install.nats 42s, h9 ...` (at most 10 named).
    pub fn heartbeat(&self, now: Duration) -> Option<String> {
        if self.running.is_empty() {
            return None;
        }
        let named: Vec<String> = self
            .slowest()
            .into_iter()
            .take(10)
            .map(|(host, r)| {
                format!(
                    "{host} ({} {} {})",
                    r.layer,
                    r.step,
                    elapsed(now.saturating_sub(r.step_since))
                )
            })
            .collect();
        let more = self.running.len().saturating_sub(named.len());
        Some(format!(
            "still running ({}/{}, {}): {}{}",
            self.running.len(),
            self.total,
            elapsed(now),
            named.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ))
    }

    fn slowest(&self) -> Vec<(&String, &Running)> {
        let mut hosts: Vec<(&String, &Running)> = self.running.iter().collect();
        hosts.sort_by(|a, b| a.1.step_since.cmp(&b.1.step_since).then(a.0.cmp(b.0)));
        hosts
    }
}

/// `42s`, `3m05s`, `1h02m`
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_hundred_hosts_stay_readable() {
        let hosts: Vec<String> = (1..=100).map(|i| format!("mp-{i:03}")).collect();
        let mut live = LiveState::new("deploy", hosts.clone());
        for (i, h) in hosts.iter().enumerate() {
            live.step_started(h, "install", "install.nats", secs(10 + i as u64));
        }
        for h in &hosts[..37] {
            live.host_done(h, HostState::Ok);
        }
        live.host_done("mp-050", HostState::Failed);
        let view = live.view(secs(200), 3);
        assert_eq!(
            view,
            [
                "deploy 3m20s · 38/100 hosts done: 1 failed, 37 ok · 62 running",
                "  mp-038   install  install.nats                         2m33s",
                "  mp-039   install  install.nats                         2m32s",
                "  mp-040   install  install.nats                         2m31s",
                "  … and 59 more running",
            ]
        );
        let beat = live.heartbeat(secs(200)).unwrap();
        assert!(
            beat.starts_with(
                "still running (62/100, 3m20s): mp-038 (install install.nats 2m33s), mp-039"
            ),
            "{beat}"
        );
        assert!(beat.ends_with(" and 52 more"), "{beat}");
    }

    #[test]
    fn nothing_running_no_heartbeat() {
        let mut live = LiveState::new("facts", ["h1".to_string()]);
        assert_eq!(
            live.view(secs(1), 15),
            [
                "facts 1s · 0/1 hosts done · 1 running",
                "  h1       detect   connect                                 1s"
            ]
        );
        live.host_done("h1", HostState::Ok);
        assert_eq!(live.heartbeat(secs(2)), None);
        assert_eq!(live.view(secs(2), 15), ["facts 2s · 1/1 hosts done: 1 ok"]);
        assert_eq!(elapsed(secs(3725)), "1h02m");
    }
}
