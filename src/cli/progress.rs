//! A recorded run as the user sees it: every event goes to the run record (run.json,
//! events.jsonl, one log per host) and to the terminal, a live view on a TTY (one line per
//! running host, finished hosts folded into a summary line) or plain timestamped lines and a
//! heartbeat every 10 s without one. Ctrl-C (SIGTERM, SIGHUP) ends the run as interrupted.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::agent::{AgentEvent, StepEnd, StepStatus};
use crate::report::builder::{host_log_path, rfc3339, run_id};
use crate::report::live::LiveState;
use crate::report::record::{InventoryRef, StepRecord};
use crate::report::render::text::{self, Paint};
use crate::report::store::RunWriter;
use crate::report::{ExitCode, HostEnd, RecordBuilder, Redactor, RunMeta, RunRecord};

/// How often the heartbeat names the hosts still running, without a TTY.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Running hosts shown at most in the live view (the slowest).
const LIVE_HOSTS: usize = 15;
/// `run.json` is rewritten at most this often while hosts finish: rewriting it whole after
/// every host made a run quadratic in its hosts (5,000 hosts: minutes of fsyncs). Every host's
/// end is in `events.jsonl` at once; `run.json` catches up within this, and at the end.
const RECORD_EVERY: Duration = Duration::from_millis(250);

/// What every recorded command needs from the global flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub runs_dir: PathBuf,
    pub inventory: InventoryRef,
    pub argv: Vec<String>,
    pub quiet: bool,
    pub verbose: bool,
    /// Colours: a TTY, no NO_COLOR, no --no-color.
    pub color: bool,
    /// Live view: stdout is a TTY and not -q.
    pub live: bool,
}

impl Settings {
    pub fn new(
        runs_dir: PathBuf,
        inventory: InventoryRef,
        quiet: bool,
        verbose: bool,
        no_color: bool,
    ) -> Self {
        let tty = std::io::stdout().is_terminal();
        let no_color = no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            runs_dir,
            inventory,
            argv: std::env::args().collect(),
            quiet,
            verbose,
            color: tty && !no_color,
            live: tty && !quiet,
        }
    }
}

impl Settings {
    /// No live view, no step lines, no heartbeat: stdout is a JSON document.
    pub fn without_display(mut self) -> Self {
        self.live = false;
        self.quiet = true;
        self.color = false;
        self
    }
}

struct State {
    builder: RecordBuilder,
    live: LiveState,
    /// Hosts whose agent runs now, with the agent's run id (to stop it on Ctrl-C).
    agents: BTreeMap<String, String>,
}

/// One recorded run, shared by the progress callback, the ticker and the command.
pub struct Recorder {
    state: Mutex<State>,
    writer: Option<RunWriter>,
    redactor: Redactor,
    settings: Settings,
    check: bool,
    started: Instant,
    bar: Option<ProgressBar>,
    /// The live view's ticker (or heartbeat) and run.json's flusher, stopped at the end.
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    interrupts: Mutex<Option<Interrupts>>,
    /// When `run.json` was last written; held while writing, so writes never overlap and a
    /// later snapshot is never overwritten by an earlier one.
    written: Mutex<Option<Instant>>,
    /// Something recorded since run.json was last written.
    dirty: AtomicBool,
}

impl Recorder {
    /// Starts the record (run.json with result `running`) and the terminal display.
    pub fn start(
        settings: &Settings,
        command: &str,
        check: bool,
        hosts: &[String],
        redactor: Redactor,
    ) -> Arc<Self> {
        let interrupts = Interrupts::install();
        let now = SystemTime::now();
        let meta = RunMeta {
            id: run_id(now, std::process::id()),
            command: command.to_string(),
            check,
            argv: settings.argv.clone(),
            inventory: settings.inventory.clone(),
            pid: std::process::id(),
        };
        let builder = RecordBuilder::new(meta, hosts.iter().cloned(), now);
        let writer = match RunWriter::create(&settings.runs_dir, builder.record(), redactor.clone())
        {
            Ok(writer) => Some(writer),
            Err(error) => {
                eprintln!(
                    "warning: cannot record this run in {}: {error}; going on without a record",
                    settings.runs_dir.display()
                );
                None
            }
        };
        let bar = settings.live.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            bar.set_style(ProgressStyle::with_template("{msg}").expect("a valid template"));
            super::logging::set_live_view(Some(bar.clone()));
            bar
        });
        let recorder = Arc::new(Self {
            state: Mutex::new(State {
                builder,
                live: LiveState::new(command, hosts.iter().cloned()),
                agents: BTreeMap::new(),
            }),
            writer,
            redactor,
            settings: settings.clone(),
            check,
            started: Instant::now(),
            bar,
            tasks: Mutex::new(Vec::new()),
            interrupts: Mutex::new(interrupts),
            written: Mutex::new(Some(Instant::now())),
            dirty: AtomicBool::new(false),
        });
        recorder.event(
            None,
            serde_json::json!({"event": "run_started", "command": command, "check": check, "hosts": hosts}),
        );
        let mut tasks = vec![tokio::spawn(flush(Arc::downgrade(&recorder)))];
        if !settings.quiet {
            tasks.push(tokio::spawn(tick(recorder.clone())));
        }
        *recorder.tasks.lock().unwrap_or_else(|e| e.into_inner()) = tasks;
        recorder
    }

    /// The run's id (its directory's name).
    pub fn id(&self) -> String {
        self.lock().builder.record().id.clone()
    }

    /// What a rolling run tells as it goes: shown, recorded as events and in the hosts' logs.
    pub fn rollout(&self, note: crate::run::rollout::RolloutNote) {
        use crate::run::rollout::RolloutNote;
        let at = self.started.elapsed();
        match note {
            RolloutNote::Plan { batches, gaps } => {
                {
                    let mut state = self.lock();
                    for b in batches {
                        for host in &b.hosts {
                            state.live.batch(host, b.index, false, at);
                        }
                    }
                }
                let sizes: Vec<String> = batches
                    .iter()
                    .map(|b| format!("{}:{}", b.group, b.hosts.len()))
                    .collect();
                self.event(
                    None,
                    serde_json::json!({"event": "rollout_planned", "batches": batches.iter().map(|b| serde_json::json!({"index": b.index, "group": b.group.as_str(), "hosts": b.hosts})).collect::<Vec<_>>(), "gaps": gaps}),
                );
                self.say(&format!(
                    "rolling in {} batches ({})",
                    batches.len(),
                    sizes.join(", ")
                ));
                if let Some(gaps) = gaps {
                    self.say(&format!("note: {gaps}"));
                }
            }
            RolloutNote::BatchStarted(b) => {
                {
                    let mut state = self.lock();
                    for host in &b.hosts {
                        state.live.batch(host, b.index, true, at);
                    }
                }
                for host in &b.hosts {
                    self.note(host, &format!("batch {} ({}) starts", b.index, b.group));
                }
                self.event(
                    None,
                    serde_json::json!({"event": "batch_started", "batch": b.index, "group": b.group.as_str(), "hosts": b.hosts}),
                );
                if !self.settings.quiet {
                    self.say(&format!(
                        "batch {} ({}): {}",
                        b.index,
                        b.group,
                        b.hosts.join(", ")
                    ));
                }
            }
            RolloutNote::BatchEnded(b) => {
                self.event(
                    None,
                    serde_json::json!({"event": "batch_finished", "batch": b.index, "result": b.result.as_str(), "duration_ms": b.duration.as_millis() as u64, "detail": b.detail}),
                );
                if !self.settings.quiet && b.result != crate::run::rollout::BatchResult::Skipped {
                    self.say(&format!(
                        "batch {} {} in {}{}",
                        b.index,
                        b.result.as_str(),
                        crate::report::render::secs(b.duration.as_millis() as u64),
                        b.detail
                            .as_ref()
                            .map(|d| format!(": {d}"))
                            .unwrap_or_default()
                    ));
                }
            }
            RolloutNote::Stopped(why) => {
                self.event(
                    None,
                    serde_json::json!({"event": "rollout_stopped", "why": why}),
                );
                self.say(why);
            }
        }
    }

    /// A rolling run's batches and why it stopped, for the record.
    pub fn batches(
        &self,
        batches: Vec<crate::report::record::BatchRecord>,
        stopped: Option<String>,
    ) {
        self.lock().builder.batches(batches, stopped);
        self.write(true);
    }

    /// One event of a host's agent: recorded, logged, shown.
    pub fn agent_event(&self, host: &str, event: &AgentEvent) {
        let now = SystemTime::now();
        {
            let mut state = self.lock();
            state.builder.agent_event(host, event, now);
            match event {
                AgentEvent::RunStarted { run_id, .. } => {
                    state.agents.insert(host.to_string(), run_id.clone());
                }
                AgentEvent::RunFinished { .. } => {
                    state.agents.remove(host);
                }
                AgentEvent::StepStarted { layer, step, .. } => {
                    let at = self.started.elapsed();
                    state.live.step_started(host, layer.as_str(), step, at);
                }
                _ => {}
            }
        }
        if let Ok(value) = serde_json::to_value(event) {
            self.event(Some(host), value);
        }
        self.log(host, &log_lines(now, event));
        if let Some(lines) = self.step_lines(host, event) {
            self.say(&lines);
        }
    }

    /// Runs `work` until it ends or the user interrupts (Ctrl-C, SIGTERM, SIGHUP); Err names
    /// the signal.
    pub async fn interruptible<F: Future>(&self, work: F) -> Result<F::Output, &'static str> {
        let taken = self
            .interrupts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        race(taken, work).await
    }

    /// A step done without the agent (facts, clean).
    pub fn step(&self, host: &str, step: StepRecord) {
        let now = SystemTime::now();
        let mut text = format!(
            "{} {} {} {}: {}\n",
            rfc3339(now),
            step.layer,
            step.step,
            step.status,
            step.message
        );
        for change in &step.changes {
            text.push_str(&format!("  - {change}\n"));
        }
        for line in step.output_tail.lines() {
            text.push_str(&format!("  | {line}\n"));
        }
        self.event(
            Some(host),
            serde_json::json!({"event": "step_finished", "layer": step.layer, "step": step.step,
                "status": step.status, "duration_ms": step.duration_ms, "message": step.message,
                "changes": step.changes}),
        );
        self.log(host, &text);
        self.lock().builder.finish_step(host, step, now);
    }

    /// A host is done: recorded (in events.jsonl at once, in run.json within
    /// [`RECORD_EVERY`], so a lost run keeps it) and shown.
    pub fn host_done(&self, host: &str, end: HostEnd) {
        let status = end.status;
        let line = format!(
            "{} host {status} in {}{}\n",
            rfc3339(SystemTime::now()),
            crate::report::render::secs(end.duration.as_millis() as u64),
            end.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        self.event(
            Some(host),
            serde_json::json!({"event": "host_finished", "status": status,
                "error": end.error, "duration_ms": end.duration.as_millis() as u64}),
        );
        self.log(host, &line);
        // Thousands of hosts must not hold thousands of files open.
        if let Some(writer) = &self.writer {
            writer.close_log(&host_log_path(host));
        }
        {
            let mut state = self.lock();
            state.live.host_done(host, status.into());
            state.agents.remove(host);
            state.builder.host_finished(host, end);
        }
        self.write(false);
    }

    /// Hosts whose agent was still at work, with its run id.
    pub fn running_agents(&self) -> Vec<(String, String)> {
        self.lock()
            .agents
            .iter()
            .map(|(h, r)| (h.clone(), r.clone()))
            .collect()
    }

    /// Something said about a host outside its steps (the agent was stopped ...).
    pub fn note(&self, host: &str, text: &str) {
        self.log(host, &format!("{} {text}\n", rfc3339(SystemTime::now())));
        self.event(
            Some(host),
            serde_json::json!({"event": "note", "message": text}),
        );
    }

    /// Ends the run: the final run.json, the display cleared. Returns the record as written.
    pub fn finish(&self, code: ExitCode, interrupted: bool, error: Option<String>) -> RunRecord {
        for task in self
            .tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            task.abort();
        }
        if let Some(bar) = &self.bar {
            super::logging::set_live_view(None);
            bar.finish_and_clear();
        }
        let record = {
            let mut state = self.lock();
            state
                .builder
                .finish(code, interrupted, error, SystemTime::now());
            state.builder.record().clone()
        };
        self.event(
            None,
            serde_json::json!({"event": "run_finished", "result": record.result,
                "interrupted": interrupted, "exit_code": code.code(), "duration_ms": record.duration_ms}),
        );
        self.write(true);
        self.redactor
            .to_json(&record)
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or(record)
    }

    /// The recap table and the failures, then where the record is.
    /// Ends a run cut by a signal: the record says interrupted, the recap shows where each
    /// host was, and the exit code is 130.
    pub fn end_interrupted(&self) -> ExitCode {
        let record = self.finish(ExitCode::Interrupted, true, None);
        self.print_recap(&record);
        ExitCode::Interrupted
    }

    /// [`Recorder::end_interrupted`] for a command whose stdout is one JSON document:
    /// `{"hosts":[...]}`, each host as `host_json` renders its record (status `interrupted`
    /// for those still at work), instead of the recap.
    pub fn end_interrupted_json(
        &self,
        host_json: impl Fn(&crate::report::record::HostRecord) -> serde_json::Value,
    ) -> ExitCode {
        let record = self.finish(ExitCode::Interrupted, true, None);
        let hosts: Vec<serde_json::Value> = record.hosts.iter().map(host_json).collect();
        match serde_json::to_string_pretty(&serde_json::json!({ "hosts": hosts })) {
            Ok(text) => println!("{}", self.redactor.redact(&text)),
            Err(error) => eprintln!("error: cannot encode the hosts as JSON: {error}"),
        }
        ExitCode::Interrupted
    }

    pub fn print_recap(&self, record: &RunRecord) {
        print!(
            "{}",
            self.redactor
                .redact(&text::recap(record, Paint(self.settings.color)))
        );
        if let (Some(writer), false) = (&self.writer, self.settings.quiet) {
            println!(
                "\nrecord: {} (mp-remote report {} --format html -o report.html)",
                writer.dir().display(),
                record.id
            );
        }
    }

    /// A line for the user, above the live view when there is one; plain lines get a time.
    pub fn say(&self, text: &str) {
        let text = self.redactor.redact(text);
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let clock = clock(SystemTime::now());
                for line in text.lines() {
                    println!("{clock} {line}");
                }
            }
        }
    }

    /// The step line (and its changes and output) that the verbosity shows, if any.
    fn step_lines(&self, host: &str, event: &AgentEvent) -> Option<String> {
        // Steps of an earlier run that a cut connection left going, seen finishing now.
        let (event, tag) = match event {
            AgentEvent::Resumed { of, .. } => (of.as_ref(), "(earlier, cut run) "),
            event => (event, ""),
        };
        let AgentEvent::StepFinished(StepEnd {
            layer,
            step,
            status,
            duration_ms,
            message,
            output_tail,
            changes,
            diff,
            ..
        }) = event
        else {
            return None;
        };
        let show = match status {
            StepStatus::Failed => true,
            StepStatus::Changed => !self.settings.quiet,
            _ => self.settings.verbose,
        };
        if !show {
            return None;
        }
        let word = crate::report::record::StepState::from_agent(status).as_str();
        let word = match (word, self.check) {
            ("changed", true) => "would",
            ("failed", _) => "FAILED",
            (word, _) => word,
        };
        let paint = Paint(self.settings.color);
        let mut out = format!(
            "{host:<14} {layer:<8} {} {step:<32} {duration_ms:>6} ms  {tag}{message}",
            paint.status(&format!("{word:<9}"), word)
        );
        // What changed, where the one-line message does not already say it.
        for change in changes.iter().filter(|c| !message.contains(c.as_str())) {
            out.push_str(&format!("\n{:>16}- {change}", ""));
        }
        // `--diff`: the file's change, as `diff -u` shows it (printed through the redactor).
        for line in diff.lines() {
            out.push_str(&format!("\n{:>16}{}", "", paint.diff_line(line)));
        }
        if *status == StepStatus::Failed {
            for line in output_tail.lines() {
                out.push_str(&format!("\n{:>16}| {line}", ""));
            }
        }
        Some(out)
    }

    fn event(&self, host: Option<&str>, value: serde_json::Value) {
        let Some(writer) = &self.writer else { return };
        let mut line = serde_json::Map::new();
        line.insert("time".into(), rfc3339(SystemTime::now()).into());
        if let Some(host) = host {
            line.insert("host".into(), host.into());
        }
        if let serde_json::Value::Object(fields) = value {
            for (key, field) in fields {
                if !(key == "host" && host.is_some()) {
                    line.insert(key, field);
                }
            }
        }
        if let Err(error) = writer.write_event(serde_json::Value::Object(line)) {
            tracing::warn!("cannot append to the run's events: {error}");
        }
    }

    fn log(&self, host: &str, text: &str) {
        if let Some(writer) = &self.writer {
            if let Err(error) = writer.append_log(&host_log_path(host), text) {
                tracing::warn!("cannot append to {host}'s log: {error}");
            }
        }
    }

    /// Rewrites run.json from the record as it is now: always when `now`, else only when the
    /// last write is [`RECORD_EVERY`] old (a later call, or the end, writes what is skipped).
    fn write(&self, now: bool) {
        let Some(writer) = &self.writer else { return };
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if !now && written.is_some_and(|at| at.elapsed() < RECORD_EVERY) {
            self.dirty.store(true, Ordering::Relaxed);
            return;
        }
        self.dirty.store(false, Ordering::Relaxed);
        let record = self.lock().builder.record().clone();
        if let Err(error) = writer.write_record(&record) {
            eprintln!(
                "warning: cannot write {}/run.json: {error}",
                writer.dir().display()
            );
        }
        *written = Some(Instant::now());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Writes what [`Recorder::write`] left for later, so run.json lags at most about
/// [`RECORD_EVERY`] behind events.jsonl even when no host finishes for a while.
async fn flush(recorder: std::sync::Weak<Recorder>) {
    let mut interval = tokio::time::interval(RECORD_EVERY);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(recorder) = recorder.upgrade() else {
            return;
        };
        if recorder.dirty.load(Ordering::Relaxed) {
            recorder.write(false);
        }
    }
}

/// Redraws the live view (a TTY) or prints the heartbeat (plain lines) until aborted.
async fn tick(recorder: Arc<Recorder>) {
    let period = if recorder.bar.is_some() {
        Duration::from_millis(200)
    } else {
        HEARTBEAT
    };
    let mut interval = tokio::time::interval(period);
    interval.tick().await;
    loop {
        interval.tick().await;
        let now = recorder.started.elapsed();
        match &recorder.bar {
            Some(bar) => {
                let (columns, rows) = terminal_size();
                let shown = LIVE_HOSTS.min(rows.saturating_sub(4).max(1));
                let lines = recorder.lock().live.view(now, shown);
                let lines: Vec<String> = lines
                    .into_iter()
                    .map(|l| l.chars().take(columns.saturating_sub(1)).collect())
                    .collect();
                let paint = Paint(recorder.settings.color);
                let mut text = paint.bold(&lines[0]);
                for line in &lines[1..] {
                    text.push('\n');
                    text.push_str(line);
                }
                bar.set_message(text);
            }
            None => {
                let beat = recorder.lock().live.heartbeat(now);
                if let Some(beat) = beat {
                    recorder.say(&beat);
                }
            }
        }
    }
}

/// The host log's text for one event: every field, with the output in full as the agent
/// sent it.
fn log_lines(now: SystemTime, event: &AgentEvent) -> String {
    let time = rfc3339(now);
    match event {
        AgentEvent::StepStarted {
            layer, step, title, ..
        } => format!("{time} {layer} {step} started: {title}\n"),
        AgentEvent::StepFinished(StepEnd {
            layer,
            step,
            status,
            duration_ms,
            message,
            changes,
            output_tail,
            output,
            hint,
            diff,
            ..
        }) => {
            let status = crate::report::record::StepState::from_agent(status);
            let mut text =
                format!("{time} {layer} {step} {status} in {duration_ms} ms: {message}\n");
            for change in changes {
                text.push_str(&format!("  - {change}\n"));
            }
            for line in diff.lines() {
                text.push_str(&format!("  {line}\n"));
            }
            // The whole output where the agent sent it, else its tail.
            let output = if output.is_empty() {
                output_tail
            } else {
                output
            };
            for line in output.lines() {
                text.push_str(&format!("  | {line}\n"));
            }
            if let Some(hint) = hint {
                text.push_str(&format!("  hint: {hint}\n"));
            }
            text
        }
        AgentEvent::Resumed { run_id, of } => log_lines(now, of)
            .lines()
            .map(|l| format!("{time} (earlier run {run_id}) {l}\n"))
            .collect(),
        other => format!(
            "{time} {}\n",
            serde_json::to_string(other).unwrap_or_default()
        ),
    }
}

/// `12:04:05` (UTC), for plain lines.
fn clock(now: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(now).to_string();
    stamp.get(11..19).unwrap_or(&stamp).to_string()
}

fn terminal_size() -> (usize, usize) {
    // SAFETY: TIOCGWINSZ fills the struct or fails; nothing else is touched.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            (size.ws_col as usize, size.ws_row as usize)
        } else {
            (100, 40)
        }
    }
}

/// Ctrl-C, SIGTERM and SIGHUP (a lost terminal), caught from the moment the run is recorded:
/// from then on they end the run cleanly instead of killing the process.
/// Runs `work` until it ends or a signal comes (Ctrl-C, SIGTERM, SIGHUP); Err names the
/// signal. For commands that keep no record unless interrupted (ping, status).
pub async fn until_interrupted<F: Future>(work: F) -> Result<F::Output, &'static str> {
    race(Interrupts::install(), work).await
}

async fn race<F: Future>(signals: Option<Interrupts>, work: F) -> Result<F::Output, &'static str> {
    let Some(mut signals) = signals else {
        return Ok(work.await);
    };
    tokio::select! {
        output = work => Ok(output),
        _ = signals.int.recv() => Err("Ctrl-C"),
        _ = signals.term.recv() => Err("SIGTERM"),
        _ = signals.hup.recv() => Err("SIGHUP"),
    }
}

/// Records a run of a command that is not recorded otherwise, cut by a signal: the hosts that
/// had finished as they ended, the others interrupted; prints the recap and exits 130, as an
/// interrupted deploy does.
pub fn record_interrupted(
    settings: &Settings,
    command: &str,
    hosts: &[String],
    finished: Vec<(String, HostEnd)>,
) -> Arc<Recorder> {
    let recorder = Recorder::start(settings, command, false, hosts, Redactor::default());
    for (host, end) in finished {
        recorder.host_done(&host, end);
    }
    recorder
}

struct Interrupts {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl Interrupts {
    fn install() -> Option<Self> {
        Some(Self {
            int: signal(SignalKind::interrupt()).ok()?,
            term: signal(SignalKind::terminate()).ok()?,
            hup: signal(SignalKind::hangup()).ok()?,
        })
    }
}

/// After an interrupt: tells the agents still at work to stop (a second Ctrl-C, or 30 s,
/// gives up on that), noting the answer in each host's log.
pub async fn stop_agents(
    recorder: &Recorder,
    hosts: &[&crate::inventory::Host],
    fanout: &crate::run::FanOut,
) {
    let agents = recorder.running_agents();
    if agents.is_empty() {
        return;
    }
    eprintln!(
        "interrupted: telling the agents on {} host(s) to stop (Ctrl-C again to leave them)",
        agents.len()
    );
    let agents: std::collections::HashMap<String, String> = agents.into_iter().collect();
    let targets: Vec<&crate::inventory::Host> = hosts
        .iter()
        .copied()
        .filter(|h| agents.contains_key(&h.name))
        .collect();
    let fanout = crate::run::FanOut {
        timeout: Some(Duration::from_secs(30)),
        ..fanout.clone()
    };
    let agents = &agents;
    let stop = crate::run::for_each_host(&targets, &fanout, |transport, host| async move {
        let run_id = agents.get(&host.name).cloned().unwrap_or_default();
        crate::run::agent_exec::stop_agent(transport.as_ref(), host, &run_id).await
    });
    match tokio::select! {
        outcomes = stop => Some(outcomes),
        _ = tokio::signal::ctrl_c() => None,
    } {
        Some(outcomes) => {
            for o in outcomes {
                let line = match (o.value, o.error) {
                    (Some(done), _) => done,
                    (None, error) => {
                        format!("could not stop the agent: {}", error.unwrap_or_default())
                    }
                };
                recorder.note(&o.host, &line);
                eprintln!("{:<14} {line}", o.host);
            }
        }
        None => eprintln!("left the agents running"),
    }
}

#[cfg(test)]
#[path = "progress_tests.rs"]
mod tests;
