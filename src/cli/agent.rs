//! `mp-remote agent run`: the host side. Reads a plan, runs it, writes one JSON event per
//! line on stdout (the control node reads them as they come). `agent follow`: the same events
//! again, from the run's event log, for a control node whose connection was cut.

use std::io::{Read, Write};
use std::path::Path;

use crate::agent::{run_plan, AgentEvent};
use crate::plan::{HostPlan, PLAN_FORMAT};

/// Exit codes of the agent: 0 plan done, 2 a step failed, 1 the plan could not be read.
pub async fn run(plan_path: &Path) -> i32 {
    let text = if plan_path == Path::new("-") {
        let mut text = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut text) {
            eprintln!("agent: cannot read the plan from stdin: {e}");
            return 1;
        }
        text
    } else {
        match std::fs::read_to_string(plan_path) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("agent: cannot read {}: {e}", plan_path.display());
                return 1;
            }
        }
    };
    let plan: HostPlan = match serde_json::from_str(&text) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!(
                "agent: the plan is not valid ({e}): control node and agent differ in version?"
            );
            return 1;
        }
    };
    if plan.format != PLAN_FORMAT {
        eprintln!(
            "agent: plan format {} but this agent reads format {PLAN_FORMAT}: push a matching agent",
            plan.format
        );
        return 1;
    }
    // A check changes nothing: it need not wait for a running agent.
    let _lock = if plan.check_only {
        None
    } else {
        let mut follower = crate::agent::follow::Follower::new(&plan.state_dir, &plan.run_id);
        let mut told = false;
        let acquired = crate::agent::lock::acquire(&plan.state_dir, crate::agent::lock::WAIT, || {
            if !told {
                eprintln!("agent: another agent runs on this host (an earlier, cut deploy?); following it until it ends");
                told = true;
            }
            follower.poll().iter().for_each(print_event);
        })
        .await;
        if told {
            // What it wrote between our last look and its end.
            follower.poll().iter().for_each(print_event);
        }
        match acquired {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("agent: {e}");
                return 1;
            }
        }
    };
    let log_path = crate::agent::follow::log_path(Path::new(&plan.state_dir), &plan.run_id);
    let mut log = std::fs::create_dir_all(log_path.parent().unwrap_or(Path::new(".")))
        .and_then(|_| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
        })
        .ok();
    let mut emit = |event: &AgentEvent| {
        print_event(event);
        if let (Some(file), Ok(line)) = (log.as_mut(), serde_json::to_string(event)) {
            let _ = writeln!(file, "{line}");
        }
    };
    if run_plan(&plan, &mut emit).await {
        0
    } else {
        2
    }
}

/// Exit codes of `agent follow`: 0 the run finished (its `run_finished` was printed), 3 its
/// agent stopped before that (the one line on stderr says where), 1 the log cannot be read.
pub async fn follow(state_dir: &Path, run_id: &str, skip: usize) -> i32 {
    use crate::agent::follow::{follow_run, stopped_message, FollowEnd, Pace};
    if run_id.is_empty() || run_id.contains('/') {
        eprintln!("agent: {run_id:?} is not a run id");
        return 1;
    }
    let mut print = |line: &str| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    match follow_run(state_dir, run_id, skip, &mut print, Pace::DEFAULT).await {
        Ok(FollowEnd::Finished) => 0,
        Ok(FollowEnd::Stopped { last }) => {
            eprintln!("{}", stopped_message(run_id, last.as_deref()));
            3
        }
        Err(e) => {
            let log = crate::agent::follow::log_path(state_dir, run_id);
            eprintln!("agent: cannot read {}: {e}", log.display());
            1
        }
    }
}

/// One event on stdout, flushed: the control node reads them as they come. Errors are ignored:
/// the control node may be gone, and the run goes on regardless.
fn print_event(event: &AgentEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
