//! A shell script with an optional check: the check exiting 0 means nothing to do.

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;

pub async fn apply(
    check: Option<&str>,
    apply: &str,
    check_only: bool,
) -> Result<Outcome, StepError> {
    if let Some(check) = check {
        let out = sh(check)
            .await
            .map_err(|e| StepError::new(format!("cannot run the check: {e}")))?;
        if out.success() {
            return Ok(Outcome::unchanged("already in place").with_output(&out.output));
        }
    }
    if check_only {
        return Ok(Outcome::changed("would run the script", vec![]));
    }
    let out = sh(apply)
        .await
        .map_err(|e| StepError::new(format!("cannot run the script: {e}")))?;
    if !out.success() {
        return Err(
            StepError::new(format!("the script exited with {:?}", out.code))
                .with_output(&out.output),
        );
    }
    // A script that says what it did in one line is its own message.
    let mut lines = out.output.lines().filter(|l| !l.trim().is_empty());
    let message = match (lines.next(), lines.next()) {
        (Some(line), None) => line.trim().to_string(),
        _ => "ran the script".to_string(),
    };
    Ok(Outcome::changed(message, vec![]).with_output(&out.output))
}
