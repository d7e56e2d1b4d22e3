//! The documented exit codes (README, "Exit codes").

use super::HostStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Every host ok.
    Ok = 0,
    /// Bad usage or a bad inventory: nothing ran.
    Usage = 1,
    /// At least one host failed (or timed out).
    HostFailed = 2,
    /// At least one host unreachable, and none failed.
    HostUnreachable = 3,
    /// Interrupted by Ctrl-C.
    Interrupted = 130,
}

impl ExitCode {
    /// Failed beats unreachable: a failure means something was half done on a host we reached,
    /// which needs a look before anything else.
    pub fn from_statuses(statuses: impl IntoIterator<Item = HostStatus>) -> Self {
        let mut code = Self::Ok;
        for status in statuses {
            match status {
                HostStatus::Failed | HostStatus::TimedOut => return Self::HostFailed,
                HostStatus::Unreachable => code = Self::HostUnreachable,
                // What stopped the rollout before it decides the code.
                HostStatus::Ok | HostStatus::Skipped => {}
            }
        }
        code
    }

    pub fn code(self) -> i32 {
        self as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HostStatus::*;

    #[test]
    fn exit_code_table() {
        let cases: &[(&[HostStatus], ExitCode)] = &[
            (&[], ExitCode::Ok),
            (&[Ok, Ok], ExitCode::Ok),
            (&[Ok, Unreachable], ExitCode::HostUnreachable),
            (&[Unreachable, Failed], ExitCode::HostFailed),
            (&[Failed, Unreachable], ExitCode::HostFailed),
            (&[Ok, TimedOut], ExitCode::HostFailed),
        ];
        for (statuses, expected) in cases {
            assert_eq!(
                ExitCode::from_statuses(statuses.iter().copied()),
                *expected,
                "{statuses:?}"
            );
        }
    }
}
