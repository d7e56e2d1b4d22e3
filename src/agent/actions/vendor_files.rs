//! Files a vendor's archive brings besides the binary (ClickHouse's default `config.xml` and
//! `users.xml`), installed the way dpkg treats a package's config files: put in place when
//! absent, replaced by a newer release's when nobody edited them since mp-remote put them
//! there, and otherwise kept, with the archive's version written beside them and said so.
//! mp-remote's own settings live in `config.d` / `users.d`, never in these files.

use std::path::{Path, PathBuf};

use crate::agent::outcome::{Outcome, StepError};
use crate::plan::model::{ArtifactFrom, VendorFile};

use super::artifact;

pub struct VendorFiles<'a> {
    /// What the archive is, in messages ("the ClickHouse 25.10.1.3832 server archive").
    pub label: &'a str,
    pub from: &'a ArtifactFrom,
    pub sha256: &'a str,
    pub files: &'a [VendorFile],
    pub work_dir: &'a str,
}

/// What the host had from the archive: `<artifact sha256> <file sha256 as installed>`.
struct Record {
    artifact: String,
    content: String,
}

pub async fn apply(vendor: &VendorFiles<'_>, check_only: bool) -> Result<Outcome, StepError> {
    let VendorFiles {
        label,
        from,
        sha256,
        files,
        work_dir,
    } = *vendor;
    let records: Vec<Option<Record>> = files.iter().map(|f| read_record(work_dir, f)).collect();
    // This very archive was applied and its files are still there (as installed, or as a
    // person left them): nothing to fetch.
    let in_place = files
        .iter()
        .zip(&records)
        .all(|(f, r)| r.as_ref().is_some_and(|r| r.artifact == sha256) && exists(&f.path));
    if in_place {
        return Ok(Outcome::unchanged(format!(
            "{} from {label} in place",
            paths(files)
        )));
    }
    if check_only {
        let change = format!("install {} from {label}", paths(files));
        return Ok(Outcome::changed(format!("would {change}"), vec![change]));
    }

    let origin = artifact::origin(from);
    let fetched = artifact::fetch_verified(from, sha256, work_dir, "vendor-files").await?;
    artifact::unpack(&fetched.file, &fetched.unpacked, origin).await?;
    let unpacked = &fetched.unpacked;

    // Every member first: an archive missing one changes nothing.
    let mut found = Vec::new();
    for file in files {
        let path = artifact::find_suffix(unpacked, &file.member, 5).ok_or_else(|| {
            StepError::new(format!(
                "{origin} holds no {}; nothing installed",
                file.member
            ))
            .hint("is it the vendor's archive for this component? check the file and its sha256")
        })?;
        found.push(path);
    }
    let mut changes = Vec::new();
    for ((file, record), new) in files.iter().zip(&records).zip(&found) {
        let new_sum = artifact::sha256_file(new).await?;
        let current = if exists(&file.path) {
            Some(artifact::sha256_file(Path::new(&file.path)).await?)
        } else {
            None
        };
        let installed_by_us = record.as_ref().map(|r| r.content.as_str());
        match current.as_deref() {
            Some(now) if now == new_sum => {}
            Some(now) if Some(now) != installed_by_us => {
                let beside = format!("{}.mp-remote-new", file.path);
                artifact::install_file(new, &beside, file.mode)?;
                changes.push(format!(
                    "kept {} (changed on this host); {label} has its own version in {beside}",
                    file.path
                ));
            }
            Some(_) => {
                artifact::install_file(new, &file.path, file.mode)?;
                changes.push(format!("replaced {} with {label}'s", file.path));
            }
            None => {
                artifact::install_file(new, &file.path, file.mode)?;
                changes.push(format!("installed {}", file.path));
            }
        }
        write_record(work_dir, file, sha256, &new_sum);
    }
    if changes.is_empty() {
        return Ok(Outcome::unchanged(format!(
            "{} already as in {label}",
            paths(files)
        )));
    }
    Ok(Outcome::changed(changes.join("; "), changes))
}

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

fn paths(files: &[VendorFile]) -> String {
    files
        .iter()
        .map(|f| f.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn record_path(work_dir: &str, file: &VendorFile) -> PathBuf {
    let name = file.path.trim_start_matches('/').replace('/', "_");
    Path::new(work_dir).join(format!("vendor-{name}.installed"))
}

fn read_record(work_dir: &str, file: &VendorFile) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(work_dir, file)).ok()?;
    let (artifact, content) = text.trim().split_once(' ')?;
    Some(Record {
        artifact: artifact.to_string(),
        content: content.to_string(),
    })
}

/// Losing the record only costs a download and a `.mp-remote-new` beside an unedited file.
fn write_record(work_dir: &str, file: &VendorFile, artifact: &str, content: &str) {
    let path = record_path(work_dir, file);
    if let Err(e) = std::fs::write(&path, format!("{artifact} {content}\n")) {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::StepStatus;

    /// A server archive as ClickHouse lays it out, with `config.xml` saying `text`; made once
    /// per text (tar keeps mtimes: made again a second later, the same text would be another
    /// archive).
    fn archive(dir: &Path, text: &str) -> (PathBuf, String) {
        let path = dir.join(format!("server-{}.tgz", text.len()));
        if path.exists() {
            use sha2::{Digest, Sha256};
            return (
                path.clone(),
                hex::encode(Sha256::digest(std::fs::read(&path).unwrap())),
            );
        }
        let tree = dir.join(format!("tree-{}", text.len()));
        let etc = tree.join("clickhouse-server-1.2.3.4/etc/clickhouse-server");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("config.xml"), text).unwrap();
        let sum = artifact::tgz_for_test(&tree, &path);
        (path, sum)
    }

    #[tokio::test]
    async fn installs_replaces_unedited_and_keeps_edited_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("etc/config.xml");
        let files = [VendorFile {
            member: "etc/clickhouse-server/config.xml".into(),
            path: target.to_string_lossy().into_owned(),
            mode: 0o644,
        }];
        let work = dir.path().join("work").to_string_lossy().into_owned();
        let apply_archive = |text: &'static str| {
            let (path, sum) = archive(dir.path(), text);
            let files = &files;
            let work = &work;
            async move {
                let from = ArtifactFrom::Uploaded {
                    path: path.to_string_lossy().into_owned(),
                };
                let vendor = VendorFiles {
                    label: "the test archive",
                    from: &from,
                    sha256: &sum,
                    files,
                    work_dir: work,
                };
                apply(&vendor, false).await
            }
        };

        let first = apply_archive("<v1/>").await.unwrap();
        assert_eq!(first.status, StepStatus::Changed, "{first:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "<v1/>");
        let again = apply_archive("<v1/>").await.unwrap();
        assert_eq!(again.status, StepStatus::Ok, "{again:?}");
        assert!(again.message.ends_with("in place"), "{again:?}");

        // Nobody edited it: a new release's file replaces it.
        let upgrade = apply_archive("<v2-longer/>").await.unwrap();
        assert!(upgrade.message.starts_with("replaced"), "{upgrade:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "<v2-longer/>");

        // A person's edit is kept; the release's version goes beside it.
        std::fs::write(&target, "<edited/>").unwrap();
        let kept = apply_archive("<v3-longer-still/>").await.unwrap();
        assert!(kept.message.starts_with("kept"), "{kept:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "<edited/>");
        let beside = format!("{}.mp-remote-new", target.display());
        assert_eq!(
            std::fs::read_to_string(beside).unwrap(),
            "<v3-longer-still/>"
        );

        let (bad, _) = archive(dir.path(), "<v4-and-more-text/>");
        let from = ArtifactFrom::Uploaded {
            path: bad.to_string_lossy().into_owned(),
        };
        let wrong_sum = "0".repeat(64);
        let refused = apply(
            &VendorFiles {
                label: "x",
                from: &from,
                sha256: &wrong_sum,
                files: &files,
                work_dir: &work,
            },
            false,
        )
        .await
        .unwrap_err();
        assert!(refused.message.contains("sha256 mismatch"), "{refused:?}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "<edited/>");
    }
}
