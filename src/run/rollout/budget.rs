//! Whether a batch's failures stop the rollout: each budget (`--max-failed`,
//! `--max-unreachable`) is checked against the batch and against the whole run. Pure.

use super::order::Batch;
use super::Rolling;

/// What went wrong in one batch, and in the run so far (this batch included).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub failed: Vec<String>,
    pub unreachable: Vec<String>,
    pub failed_total: usize,
    pub unreachable_total: usize,
    /// Hosts rolled in all.
    pub hosts: usize,
    /// Hosts in the batches after this one.
    pub later: usize,
}

/// Why the rollout stops after `batch`, or None when it goes on.
pub fn verdict(rolling: &Rolling, batch: &Batch, tally: &Tally) -> Option<String> {
    let budgets = [
        (
            "--max-failed",
            rolling.max_failed,
            &tally.failed,
            tally.failed_total,
            "failed",
        ),
        (
            "--max-unreachable",
            rolling.max_unreachable,
            &tally.unreachable,
            tally.unreachable_total,
            "unreachable",
        ),
    ];
    budgets.into_iter().find_map(|(flag, budget, hosts, in_all, what)| {
        let in_batch = hosts.len();
        let over = budget.exceeded(in_batch, batch.hosts.len()) || budget.exceeded(in_all, tally.hosts);
        over.then(|| {
            format!(
                "rollout stopped at batch {} ({}): {} {what}, over the budget {flag} {budget} ({in_batch} of {} hosts in the batch, {in_all} of {} in all); {} host(s) in later batches left on their old release",
                batch.index,
                batch.group,
                hosts.join(", "),
                batch.hosts.len(),
                tally.hosts,
                tally.later,
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::rollout::{Budget, Group};

    fn rolling(failed: &str, unreachable: &str) -> Rolling {
        Rolling {
            serial: "2".parse().unwrap(),
            max_failed: failed.parse().unwrap(),
            max_unreachable: unreachable.parse().unwrap(),
        }
    }

    fn batch() -> Batch {
        Batch {
            index: 3,
            group: Group::Collectors,
            hosts: vec!["c1".into(), "c2".into()],
        }
    }

    fn tally(failed: &[&str], unreachable: &[&str], totals: (usize, usize)) -> Tally {
        Tally {
            failed: failed.iter().map(|s| s.to_string()).collect(),
            unreachable: unreachable.iter().map(|s| s.to_string()).collect(),
            failed_total: totals.0,
            unreachable_total: totals.1,
            hosts: 10,
            later: 4,
        }
    }

    #[test]
    fn the_first_failure_stops_by_default_naming_batch_host_and_budget() {
        let why = verdict(&rolling("0", "0"), &batch(), &tally(&["c2"], &[], (1, 0))).unwrap();
        assert_eq!(
            why,
            "rollout stopped at batch 3 (collectors): c2 failed, over the budget --max-failed 0 (1 of 2 hosts in the batch, 1 of 10 in all); 4 host(s) in later batches left on their old release"
        );
        assert_eq!(
            verdict(&rolling("0", "0"), &batch(), &tally(&[], &[], (0, 0))),
            None
        );
    }

    #[test]
    fn failed_and_unreachable_are_counted_apart() {
        // One unreachable host is within --max-failed 1 but over --max-unreachable 0.
        let why = verdict(&rolling("1", "0"), &batch(), &tally(&[], &["c1"], (0, 1))).unwrap();
        assert!(
            why.contains("c1 unreachable, over the budget --max-unreachable 0"),
            "{why}"
        );
        assert_eq!(
            verdict(&rolling("0", "1"), &batch(), &tally(&[], &["c1"], (0, 1))),
            None
        );
    }

    #[test]
    fn a_budget_holds_per_batch_and_in_total() {
        // 50% of a batch of 2 is one host: fine; both is over.
        let half = rolling("50%", "0");
        assert_eq!(verdict(&half, &batch(), &tally(&["c1"], &[], (1, 0))), None);
        assert!(verdict(&half, &batch(), &tally(&["c1", "c2"], &[], (2, 0))).is_some());
        // 1 per batch is within 2, but the run's total of 3 is over it.
        let two = rolling("2", "0");
        assert_eq!(verdict(&two, &batch(), &tally(&["c1"], &[], (2, 0))), None);
        let why = verdict(&two, &batch(), &tally(&["c1"], &[], (3, 0))).unwrap();
        assert!(
            why.contains("(1 of 2 hosts in the batch, 3 of 10 in all)"),
            "{why}"
        );
        assert_eq!(Budget::Hosts(2), two.max_failed);
    }
}
