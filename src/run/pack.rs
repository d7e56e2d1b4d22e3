//! A user service's directory packed as a tar archive, deterministically: entries sorted by
//! path, fixed owner (root) and modification time, modes normalised to 0755/0644. The same
//! directory gives the same bytes, hence the same sha256 and release id on every run and every
//! control node, so a re-deploy finds its release in place and changes nothing.
//!
//! Plain ustar, written here (no tar crate): GNU tar on the host unpacks it.

use std::path::Path;

use anyhow::Context;

/// Every entry's mtime: 2000-01-01, fixed so that a checkout's timestamps do not matter.
const MTIME: u64 = 946_684_800;
const BLOCK: usize = 512;

/// Bytecode caches and VCS metadata differ between machines and runs: never shipped.
fn skipped(name: &str) -> bool {
    matches!(
        name,
        "__pycache__" | ".git" | ".venv" | ".mypy_cache" | ".pytest_cache"
    ) || name.ends_with(".pyc")
}

/// The archive of `dir`'s contents (paths relative to it).
pub fn pack(dir: &Path) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    walk(dir, "", &mut out)?;
    // Two zero blocks end the archive.
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if skipped(&name) {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}{name}");
        let meta = std::fs::symlink_metadata(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)?;
            header(out, &rel, b'2', 0o777, 0, &target.to_string_lossy())?;
        } else if meta.is_dir() {
            header(out, &format!("{rel}/"), b'5', 0o755, 0, "")?;
            walk(&path, &format!("{rel}/"), out)?;
        } else {
            use std::os::unix::fs::PermissionsExt;
            let bytes =
                std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let mode = if meta.permissions().mode() & 0o111 != 0 {
                0o755
            } else {
                0o644
            };
            header(out, &rel, b'0', mode, bytes.len() as u64, "")?;
            out.extend_from_slice(&bytes);
            let pad = (BLOCK - bytes.len() % BLOCK) % BLOCK;
            out.resize(out.len() + pad, 0);
        }
    }
    Ok(())
}

fn octal(field: &mut [u8], value: u64) {
    let text = format!("{value:0width$o}\0", width = field.len() - 1);
    field.copy_from_slice(text.as_bytes());
}

fn header(
    out: &mut Vec<u8>,
    path: &str,
    kind: u8,
    mode: u64,
    size: u64,
    link: &str,
) -> anyhow::Result<()> {
    let mut h = [0u8; BLOCK];
    // Long paths go in the prefix field, split at a '/'.
    let (prefix, name) = if path.len() <= 100 {
        ("", path)
    } else {
        let split = path[..path.len().min(156)]
            .rfind('/')
            .filter(|at| path.len() - at - 1 <= 100 && *at <= 155)
            .with_context(|| format!("{path}: path too long for the release archive"))?;
        (&path[..split], &path[split + 1..])
    };
    anyhow::ensure!(link.len() <= 100, "{path}: symlink target too long");
    h[..name.len()].copy_from_slice(name.as_bytes());
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], MTIME);
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[265..269].copy_from_slice(b"root");
    h[297..301].copy_from_slice(b"root");
    h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
    // The checksum is computed with its own field as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let text = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(text.as_bytes());
    out.extend_from_slice(&h);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_directory_same_bytes_and_tar_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("pkg/__pycache__")).unwrap();
        std::fs::write(src.join("app.py"), "print('hi')\n").unwrap();
        std::fs::write(src.join("pkg/__pycache__/x.pyc"), "junk").unwrap();
        let long = "d".repeat(60);
        std::fs::create_dir_all(src.join(&long).join(&long)).unwrap();
        std::fs::write(src.join(&long).join(&long).join("f.txt"), "x").unwrap();
        std::fs::write(src.join("run"), "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("run"), std::fs::Permissions::from_mode(0o700)).unwrap();
        let first = pack(&src).unwrap();
        // Touching a file changes nothing: mtimes are not packed.
        std::fs::write(src.join("app.py"), "print('hi')\n").unwrap();
        assert_eq!(pack(&src).unwrap(), first);

        let archive = dir.path().join("a.tar");
        std::fs::write(&archive, &first).unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        let status = std::process::Command::new("tar")
            .args([
                "-xf",
                archive.to_str().unwrap(),
                "-C",
                out.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            std::fs::read_to_string(out.join("app.py")).unwrap(),
            "print('hi')\n"
        );
        assert!(out.join(&long).join(&long).join("f.txt").is_file());
        assert!(!out.join("pkg/__pycache__").exists());
        let mode = std::fs::metadata(out.join("run"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
    }
}
