//! Runs one host's plan: every step of every layer in order, events out as it goes. A failed
//! step stops the plan; the steps after it are reported as skipped, never silently dropped.

use std::collections::BTreeSet;
use std::time::Instant;

use super::actions;
use super::event::{AgentEvent, StepStatus};
use super::state::{input_hash, State, StepRecord};
use crate::plan::HostPlan;

/// Executes `plan`, handing every event to `emit`. Returns true when no step failed.
pub async fn run_plan(plan: &HostPlan, emit: &mut dyn FnMut(&AgentEvent)) -> bool {
    let started = Instant::now();
    emit(&AgentEvent::RunStarted {
        host: plan.host.clone(),
        run_id: plan.run_id.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        check_only: plan.check_only,
    });
    let mut state = State::load(&plan.state_dir);
    let mut notified: BTreeSet<String> = BTreeSet::new();
    let (mut changed, mut failed) = (0, 0);
    for layer in &plan.layers {
        for step in &layer.steps {
            if failed > 0 {
                emit(&AgentEvent::StepFinished {
                    layer: layer.name,
                    step: step.id.clone(),
                    status: StepStatus::Skipped,
                    duration_ms: 0,
                    message: "skipped: an earlier step failed".into(),
                    changes: vec![],
                    output_tail: String::new(),
                    hint: None,
                    output: String::new(),
                    data: Default::default(),
                });
                continue;
            }
            emit(&AgentEvent::StepStarted {
                layer: layer.name,
                step: step.id.clone(),
                title: step.title.clone(),
            });
            let step_started = Instant::now();
            let result =
                actions::perform(&step.action, notified.contains(&step.id), plan.check_only).await;
            let duration_ms = step_started.elapsed().as_millis() as u64;
            let event = match result {
                Ok(outcome) => {
                    if outcome.status == StepStatus::Changed {
                        changed += 1;
                        notified.extend(step.notify.iter().cloned());
                    }
                    AgentEvent::StepFinished {
                        layer: layer.name,
                        step: step.id.clone(),
                        status: outcome.status,
                        duration_ms,
                        message: outcome.message,
                        changes: outcome.changes,
                        output_tail: outcome.output_tail,
                        hint: None,
                        output: outcome.output,
                        data: outcome.data,
                    }
                }
                Err(error) => {
                    failed += 1;
                    AgentEvent::StepFinished {
                        layer: layer.name,
                        step: step.id.clone(),
                        status: StepStatus::Failed,
                        duration_ms,
                        message: error.message,
                        changes: vec![],
                        output_tail: error.output_tail,
                        hint: error.hint,
                        output: error.output,
                        data: Default::default(),
                    }
                }
            };
            if let AgentEvent::StepFinished { status, .. } = &event {
                if !plan.check_only {
                    state.steps.insert(
                        step.id.clone(),
                        StepRecord {
                            input_hash: input_hash(&step.action),
                            status: *status,
                            run_id: plan.run_id.clone(),
                        },
                    );
                    if let Err(e) = state.save(&plan.state_dir) {
                        tracing::warn!("cannot save agent state in {}: {e}", plan.state_dir);
                    }
                }
            }
            emit(&event);
        }
    }
    emit(&AgentEvent::RunFinished {
        ok: failed == 0,
        changed,
        failed,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    failed == 0
}
