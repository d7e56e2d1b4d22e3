//! `mp-remote agent run`: the host side. Reads a plan, runs it, writes one JSON event per
//! line on stdout (the control node reads them as they come).

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
    let log_path = Path::new(&plan.state_dir)
        .join("runs")
        .join(format!("{}.events.jsonl", plan.run_id));
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

/// One event on stdout, flushed: the control node reads them as they come. Errors are ignored:
/// the control node may be gone, and the run goes on regardless.
fn print_event(event: &AgentEvent) {
    if let Ok(line) = serde_json::to_string(event) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
