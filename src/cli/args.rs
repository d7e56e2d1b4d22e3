//! Checks of global flags that clap's types cannot express: a count of 0 or a zero deadline
//! would make a run that never starts or ends at once, and a runs directory that is a file
//! would read as "no runs".

use std::path::Path;
use std::time::Duration;

/// `--forks`, `--handshakes`: a whole number of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("0 would never start a host: give 1 or more".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a whole number: give 1 or more")),
    }
}

/// `--timeout`: a humantime duration longer than zero.
pub fn deadline(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e}: write a number with a unit, e.g. 90s or 5m"))?;
    if duration.is_zero() {
        return Err("0s would time every host out at once: give e.g. 90s or 5m".to_string());
    }
    Ok(duration)
}

/// `--runs-dir`: absent (made when a run is recorded) or a directory.
pub fn runs_dir_usable(dir: &Path) -> Result<(), String> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Err(format!(
            "--runs-dir {} is not a directory: give a directory (it is made when missing), or remove the file",
            dir.display()
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_deadlines_of_zero_are_refused() {
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").unwrap_err().contains("1 or more"));
        assert!(at_least_one("-1").is_err());
        assert_eq!(deadline("90s"), Ok(Duration::from_secs(90)));
        assert!(deadline("0s").unwrap_err().contains("0s"));
        assert!(deadline("0ms").is_err());
        assert!(deadline("soon").is_err());
    }

    #[test]
    fn a_runs_dir_that_is_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("runs");
        std::fs::write(&file, "").unwrap();
        let error = runs_dir_usable(&file).unwrap_err();
        assert!(error.contains("is not a directory"), "{error}");
        assert!(runs_dir_usable(dir.path()).is_ok());
        assert!(runs_dir_usable(&dir.path().join("missing")).is_ok());
    }
}
