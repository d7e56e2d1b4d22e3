//! Test fixtures: fleets of real test hosts, inventories written for them, and the binary.

pub mod fleet;
pub mod mp;
pub mod pipeline;
pub mod runs;
pub mod site;
pub mod wait;

pub use fleet::Fleet;
pub use mp::{assert_nothing_changed, mp_remote, recap_counts, Run};
pub use wait::wait_for;
