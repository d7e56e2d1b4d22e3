//! The message ids (`Nats-Msg-Id`) this storage stored lately. A message delivered again (its
//! ack lost with a NATS node that restarted) or stored twice in the stream (a stream leader
//! that changed before it recorded the first copy's id) is acked without a second row. Only
//! within one storage process: after a crash, a batch stored but not acked comes again.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};

/// Ids remembered per stream: minutes of a busy collector fleet, well past the ack wait
/// (30 s) and the streams' duplicate window (5 min at 2,000 msg/s), in a few MB (hashes).
pub const CAPACITY: usize = 600_000;

pub struct Seen {
    set: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

fn key(id: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    id.hash(&mut hasher);
    hasher.finish()
}

impl Seen {
    pub fn new(capacity: usize) -> Self {
        Self {
            set: HashSet::with_capacity(capacity.min(1 << 16)),
            order: VecDeque::new(),
            capacity,
        }
    }

    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&key(id))
    }

    /// Remembers `id`, forgetting the oldest beyond the capacity.
    pub fn insert(&mut self, id: &str) {
        let k = key(id);
        if self.set.insert(k) {
            self.order.push_back(k);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_newest_ids_up_to_its_capacity() {
        let mut seen = Seen::new(2);
        seen.insert("h2:1:trade:1");
        seen.insert("h2:1:trade:1");
        seen.insert("h2:1:trade:2");
        assert!(seen.contains("h2:1:trade:1") && seen.contains("h2:1:trade:2"));
        seen.insert("h2:1:trade:3");
        assert!(!seen.contains("h2:1:trade:1"));
        assert!(seen.contains("h2:1:trade:3"));
    }
}
