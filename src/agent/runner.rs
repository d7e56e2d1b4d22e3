//! Runs one host's plan: every step of every layer in order, events out as it goes. A failed
//! step stops the plan; the steps after it are reported as skipped, never silently dropped.

use std::collections::BTreeSet;
use std::time::Instant;

use super::actions;
use super::diff;
use super::event::{AgentEvent, StepEnd, StepStatus};
use super::ledger::Ledger;
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
    // What this host holds of mp-remote's making, for `clean` (a check makes nothing).
    let mut ledger = (!plan.check_only).then(|| Ledger::load(&plan.state_dir));
    // Restarts an earlier run asked for and did not get to.
    let mut notified: BTreeSet<String> = state.pending_notify.clone();
    let (mut changed, mut failed) = (0, 0);
    let units: Vec<&str> = plan
        .layers
        .iter()
        .flat_map(|l| &l.steps)
        .filter_map(|s| match &s.action {
            crate::plan::Action::Service { unit } => Some(unit.as_str()),
            _ => None,
        })
        .collect();
    actions::service::ask_ahead(&units).await;
    for layer in &plan.layers {
        for step in &layer.steps {
            if failed > 0 {
                emit(&AgentEvent::StepFinished(StepEnd::skipped(
                    layer.name, &step.id,
                )));
                continue;
            }
            emit(&AgentEvent::StepStarted {
                layer: layer.name,
                step: step.id.clone(),
                title: step.title.clone(),
            });
            let step_started = Instant::now();
            let cpu_before = cpu_used_ms();
            let before = match (&step.action, plan.diff) {
                (crate::plan::Action::File { path, .. }, true) => Some(diff::read(path).await),
                _ => None,
            };
            let seen = match &ledger {
                Some(ledger) => ledger.before(&step.action),
                None => Vec::new(),
            };
            let result =
                actions::perform(&step.action, notified.contains(&step.id), plan.check_only).await;
            // A failed step may have made some of it too: what exists now and did not before.
            if let Some(ledger) = ledger.as_mut() {
                if ledger.record(seen) {
                    if let Err(e) = ledger.save(&plan.state_dir) {
                        tracing::warn!(
                            "cannot save what mp-remote made in {}: {e}",
                            plan.state_dir
                        );
                    }
                }
            }
            let duration_ms = step_started.elapsed().as_millis() as u64;
            let cpu_ms = cpu_used_ms()
                .zip(cpu_before)
                .map(|(after, before)| after.saturating_sub(before));
            let event = match result {
                Ok(outcome) => {
                    if outcome.status == StepStatus::Changed {
                        changed += 1;
                        notified.extend(step.notify.iter().cloned());
                    }
                    AgentEvent::StepFinished(StepEnd {
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
                        diff: match (&step.action, before, outcome.status) {
                            (
                                crate::plan::Action::File { path, content, .. },
                                Some(before),
                                StepStatus::Changed,
                            ) => diff::unified(path, &before, content),
                            _ => String::new(),
                        },
                        cpu_ms,
                    })
                }
                Err(error) => {
                    failed += 1;
                    AgentEvent::StepFinished(StepEnd {
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
                        diff: String::new(),
                        cpu_ms,
                    })
                }
            };
            if let AgentEvent::StepFinished(StepEnd { status, .. }) = &event {
                if !plan.check_only {
                    if *status == StepStatus::Changed {
                        state.pending_notify.extend(step.notify.iter().cloned());
                    }
                    // The notified step ran: what it owed is done.
                    if matches!(status, StepStatus::Ok | StepStatus::Changed) {
                        state.pending_notify.remove(&step.id);
                    }
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
    let installed = plan
        .layers
        .iter()
        .any(|l| l.name == crate::plan::LayerName::Install && !l.steps.is_empty());
    if changed > 0 && installed && !plan.check_only {
        super::version_cache::remember().await;
    }
    emit(&AgentEvent::RunFinished {
        ok: failed == 0,
        changed,
        failed,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    failed == 0
}

/// User + system CPU of the agent and of the children it waited for (apt, systemctl), in ms.
fn cpu_used_ms() -> Option<u64> {
    let used = |who| {
        // SAFETY: getrusage fills the zeroed struct it is given and reads nothing else.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } != 0 {
            return None;
        }
        let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
        Some(ms(usage.ru_utime) + ms(usage.ru_stime))
    };
    Some(used(libc::RUSAGE_SELF)? + used(libc::RUSAGE_CHILDREN)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Layer, LayerName, Step, PLAN_FORMAT};

    fn script_step(id: &str, check: &str, notify: &[&str]) -> Step {
        Step {
            id: id.into(),
            title: id.into(),
            action: Action::Script {
                check: Some(check.into()),
                apply: "true".into(),
                creates: Vec::new(),
            },
            notify: notify.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn plan(state_dir: &str, steps: Vec<Step>) -> HostPlan {
        HostPlan {
            format: PLAN_FORMAT,
            host: "h".into(),
            run_id: "r".into(),
            state_dir: state_dir.into(),
            check_only: false,
            diff: false,
            layers: vec![Layer {
                name: LayerName::Install,
                steps,
            }],
        }
    }

    /// A change in one plan owes a restart to a step of a later plan (phase 1 installs the
    /// release, phase 3 runs the services): the debt survives until that step has run.
    #[tokio::test]
    async fn a_notification_waits_for_the_plan_that_has_its_step() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().to_str().unwrap();
        let changed = plan(dir, vec![script_step("release", "false", &["service"])]);
        assert!(run_plan(&changed, &mut |_| {}).await);
        let pending = State::load(dir).pending_notify;
        assert_eq!(pending.into_iter().collect::<Vec<_>>(), ["service"]);

        let unrelated = plan(dir, vec![script_step("other", "true", &[])]);
        assert!(run_plan(&unrelated, &mut |_| {}).await);
        assert!(State::load(dir).pending_notify.contains("service"));

        let service = plan(dir, vec![script_step("service", "true", &[])]);
        assert!(run_plan(&service, &mut |_| {}).await);
        assert!(State::load(dir).pending_notify.is_empty());
    }
}
