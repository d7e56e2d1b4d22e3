//! A system account for a server that no package set up (a release binary): no login, no
//! home directory created, its own group, as Debian's package would have made it.

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

/// The account's comment (GECOS): how `clean` tells an account mp-remote made from one a
/// package or a person made, which it leaves alone.
pub const CREATED_BY: &str = "created by mp-remote";

pub async fn apply(name: &str, home: &str, check_only: bool) -> Result<Outcome, StepError> {
    let q = quote(name);
    if sh(&format!("id -u {q}")).await.is_ok_and(|o| o.success()) {
        return Ok(Outcome::unchanged(format!("user {name} exists")));
    }
    let change = format!("create system user {name}");
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    let nologin = if std::path::Path::new("/usr/sbin/nologin").exists() {
        "/usr/sbin/nologin"
    } else {
        "/sbin/nologin"
    };
    let run = sh(&format!(
        "useradd --system --user-group --no-create-home --home-dir {} --shell {nologin} --comment {} {q}",
        quote(home),
        quote(CREATED_BY)
    ))
    .await
    .map_err(|e| StepError::new(format!("cannot run useradd: {e}")))?;
    if !run.success() {
        return Err(StepError::new(format!(
            "cannot create system user {name} (useradd exit {:?})",
            run.code
        ))
        .hint(format!(
            "create it by hand (useradd --system {name}), then deploy again"
        ))
        .with_output(&run.output));
    }
    Ok(Outcome::changed(
        format!("created system user {name}"),
        vec![change],
    ))
}
