//! Test fixtures: fleets of real test hosts, inventories written for them, and the binary.

pub mod fleet;
pub mod mp;

pub use fleet::Fleet;
pub use mp::{assert_nothing_changed, mp_remote, Run};
