//! Who owns a file, by name, as `stat -c %U:%G` prints it, read in-process: a re-run checks
//! the owner of every file and directory it manages, and a `stat` process per check cost each
//! host more than the check itself.

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// `user:group` and the permission bits of `path`; None when it cannot be read (missing).
pub fn owner_and_mode(path: impl AsRef<Path>) -> Option<(String, u32)> {
    let meta = std::fs::metadata(path).ok()?;
    let owner = format!("{}:{}", user_name(meta.uid()), group_name(meta.gid()));
    Some((owner, meta.mode() & 0o7777))
}

/// The account's name, or its number when it has none (`stat` says UNKNOWN; a number never
/// equals a wanted name either).
fn user_name(uid: u32) -> String {
    let mut buffer = vec![0u8; 4096];
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; the name is copied out of `buffer` before
    // it goes away.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return uid.to_string();
    }
    unsafe { CStr::from_ptr(entry.pw_name) }
        .to_string_lossy()
        .into_owned()
}

fn group_name(gid: u32) -> String {
    let mut buffer = vec![0u8; 4096];
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in `user_name`.
    let rc = unsafe {
        libc::getgrgid_r(
            gid,
            &mut entry,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 || found.is_null() || entry.gr_name.is_null() {
        return gid.to_string();
    }
    unsafe { CStr::from_ptr(entry.gr_name) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_owner_as_stat_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o640))
            .unwrap();
        let (owner, mode) = owner_and_mode(&file).unwrap();
        let stat = std::process::Command::new("stat")
            .args(["-c", "%U:%G"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(owner, String::from_utf8_lossy(&stat.stdout).trim());
        assert_eq!(mode, 0o640);
        assert_eq!(owner_and_mode(dir.path().join("missing")), None);
    }
}
