//! A Debian package file the control node uploaded (`source = "push"` with a `.deb`): verified,
//! then installed unless that very version is. With apt-get, apt installs the file (its
//! dependencies come from the host's repositories, and an unmet one changes nothing); without
//! it, `dpkg -i`.

use std::path::Path;

use crate::agent::outcome::{Outcome, StepError};
use crate::agent::shell::sh;
use crate::transport::shell::quote;

use super::artifact;

pub async fn apply(
    package: &str,
    path: &str,
    sha256: &str,
    check_only: bool,
) -> Result<Outcome, StepError> {
    let installed = sh(&format!(
        "dpkg-query -W -f='${{Status}}|${{Version}}' {} 2>/dev/null",
        quote(package)
    ))
    .await
    .ok()
    .and_then(|o| {
        let (status, version) = o.output.trim().split_once('|')?;
        (status == "install ok installed").then(|| version.to_string())
    });
    // In check mode the file was not uploaded: say what would happen without it.
    let file_version = if Path::new(path).exists() {
        let out = sh(&format!("dpkg-deb -f {} Version", quote(path)))
            .await
            .map_err(|e| StepError::new(format!("cannot run dpkg-deb: {e}")))?;
        if !out.success() {
            return Err(
                StepError::new(format!("{path} is not a Debian package")).with_output(&out.output)
            );
        }
        Some(out.output.trim().to_string())
    } else {
        None
    };
    if let (Some(have), Some(want)) = (&installed, &file_version) {
        if have == want {
            return Ok(Outcome::unchanged(format!(
                "{package} {have} already installed"
            )));
        }
    }
    let change = match (&installed, &file_version) {
        (Some(have), Some(want)) => format!("replace {package} {have} with {want}"),
        (_, want) => format!(
            "install {package} {} from {path}",
            want.as_deref().unwrap_or("")
        ),
    };
    if check_only {
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }
    if file_version.is_none() {
        return Err(StepError::new(format!("{path} is missing on the host"))
            .hint("the control node uploads it before the plan runs: deploy again"));
    }
    artifact::verify(Path::new(path), sha256, path).await?;
    let absolute = std::fs::canonicalize(path)
        .map_err(|e| StepError::new(format!("cannot resolve {path}: {e}")))?;
    let file = quote(&absolute.to_string_lossy());
    let script = format!(
        "set -e
dpkg --configure -a
if command -v apt-get >/dev/null; then
  apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confold {file}
else
  dpkg -i --force-confold {file}
fi"
    );
    let run = sh(&script)
        .await
        .map_err(|e| StepError::new(format!("cannot run the package manager: {e}")))?;
    if !run.success() {
        return Err(StepError::new(format!(
            "installing {package} from {path} failed (exit {:?})",
            run.code
        ))
        .hint("see the output above: a dependency the host's repositories lack needs pushing too, or use source = \"os\"")
        .with_output(&run.output));
    }
    Ok(Outcome::changed(change.clone(), vec![change]).with_output(&run.output))
}
