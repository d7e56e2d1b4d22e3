//! The message ids (`Nats-Msg-Id`) this storage stored lately. A message delivered again (its
//! ack lost with a NATS node that restarted) or stored twice in the stream (a stream leader
//! that changed before it recorded the first copy's id) is acked without a second row. A storage
//! that stops saves them in its state directory (systemd's `StateDirectory=`) for the next: the
//! acks lost with a NATS node that restarted just before (its consumer's new leader delivers
//! those messages again) store nothing twice across the restart either. After a crash, a batch
//! stored but not acked comes again.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

/// The saved file: this, the key of [`PROBE`] (a build whose hasher differs discards the
/// file rather than trust keys it cannot match), then the keys oldest first, little endian.
const MAGIC: &[u8; 8] = b"mpseen01";
const PROBE: &str = "mp-remote storage seen ids";

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
        self.insert_key(key(id));
    }
}

impl Seen {
    /// The ids a stopped storage saved (none when there is no file, or one this build cannot
    /// read, which is logged: only duplicates are at stake, never a loss).
    pub fn load(path: &Path, capacity: usize) -> Self {
        let mut seen = Seen::new(capacity);
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return seen,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}; starting with no ids", path.display());
                return seen;
            }
        };
        let Some(keys) = decode(&bytes) else {
            tracing::warn!(
                "{} is not a list of ids this build wrote; starting with no ids",
                path.display()
            );
            return seen;
        };
        for k in keys {
            seen.insert_key(k);
        }
        seen
    }

    /// Writes the ids to `path` (a temporary file renamed over it: never half a file).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(16 + 8 * self.order.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&key(PROBE).to_le_bytes());
        for k in &self.order {
            bytes.extend_from_slice(&k.to_le_bytes());
        }
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    fn insert_key(&mut self, k: u64) {
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

fn decode(bytes: &[u8]) -> Option<Vec<u64>> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let (probe, keys) = rest.split_first_chunk::<8>()?;
    if u64::from_le_bytes(*probe) != key(PROBE) || keys.len() % 8 != 0 {
        return None;
    }
    Some(
        keys.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("chunks of 8")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_saved_at_a_stop_are_known_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen-MARKET_DATA");
        let mut seen = Seen::new(3);
        for seq in 1..=4 {
            seen.insert(&format!("h2:1:trade:{seq}"));
        }
        seen.save(&path).unwrap();
        let again = Seen::load(&path, 2);
        assert!(again.contains("h2:1:trade:4") && again.contains("h2:1:trade:3"));
        // Past the capacity: the oldest are forgotten, as while running.
        assert!(!again.contains("h2:1:trade:2") && !again.contains("h2:1:trade:1"));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_missing_or_foreign_file_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen");
        assert!(Seen::load(&path, 10).set.is_empty());
        std::fs::write(&path, b"mpseen01\0\0\0\0\0\0\0\0").unwrap();
        assert!(Seen::load(&path, 10).set.is_empty());
        std::fs::write(&path, b"something else").unwrap();
        assert!(Seen::load(&path, 10).set.is_empty());
    }

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
