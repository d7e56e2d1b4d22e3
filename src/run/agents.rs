//! Which agent binary goes to which host. The agent must run on the host's CPU and libc, and
//! the control node may be a laptop of another kind (macOS, arm64), so per host:
//! 1. `--agent-binary PATH` when given (refused when it is an ELF for another arch);
//! 2. else this very program, when it fits the host (Linux, the same arch, a glibc the host
//!    has): nothing to build, and the tests' default;
//! 3. else a static agent for the host's arch from an agents directory (`--agents-dir`,
//!    `agents/` beside this program, `~/.cache/mp-remote/agents/`), named
//!    `mp-remote-ARCH-unknown-linux-musl`, checked by its ELF header and, when a
//!    `NAME.sha256` lies beside it, by its sha256, before any upload;
//! 4. else an error naming the host and the command that builds the missing agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

use super::agent_exec::AgentBinary;

/// The architectures mp-remote builds agents for, as Rust's `target_arch` spells them.
pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// The file name of the static agent for `arch` in an agents directory.
pub fn file_name(arch: &str) -> String {
    format!("mp-remote-{arch}-unknown-linux-musl")
}

/// The command that builds the static agent for `arch` (README, "Agents for other hosts").
pub fn build_command(arch: &str) -> String {
    format!("scripts/build-agents.sh {arch}")
}

/// The Rust `target_arch` of `uname -m`'s word; None for one mp-remote has no agent for.
pub fn target_arch(uname: &str) -> Option<&'static str> {
    match uname {
        "x86_64" | "amd64" => Some("x86_64"),
        "aarch64" | "arm64" | "armv8l" => Some("aarch64"),
        _ => None,
    }
}

/// The architecture an ELF executable is for, from its header; Err says what it is instead.
pub fn elf_arch(bytes: &[u8]) -> Result<&'static str, String> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF executable (a Linux binary)".into());
    }
    let machine = match bytes[5] {
        1 => u16::from_le_bytes([bytes[18], bytes[19]]),
        2 => u16::from_be_bytes([bytes[18], bytes[19]]),
        _ => return Err("an ELF file of unknown byte order".into()),
    };
    match (bytes[4], machine) {
        (2, 62) => Ok("x86_64"),
        (2, 183) => Ok("aarch64"),
        (_, 243) => Err("a riscv64 executable".into()),
        (_, 40) => Err("a 32-bit arm executable".into()),
        (_, 3) => Err("a 32-bit x86 executable".into()),
        (1, _) => Err("a 32-bit executable".into()),
        (_, other) => Err(format!("an executable for ELF machine {other}")),
    }
}

/// What the host is, as far as picking its agent goes.
#[derive(Debug, Clone)]
pub struct HostKind<'a> {
    pub name: &'a str,
    /// `uname -m`.
    pub uname: &'a str,
    /// Its glibc (None: unknown, or none).
    pub glibc: Option<Vec<u32>>,
    /// Reached without SSH: this very program is the agent whatever the rest says.
    pub local: bool,
}

/// `--agents-dir` as the command line gave it: every run of this process looks there first.
static AGENTS_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();

pub fn set_dir(dir: Option<PathBuf>) {
    let _ = AGENTS_DIR.set(dir);
}

/// The agents of one run, each file read and checked once.
pub struct Agents {
    pinned: Option<(PathBuf, Arc<AgentBinary>)>,
    dirs: Vec<PathBuf>,
    own: Result<Arc<AgentBinary>, String>,
    found: Mutex<BTreeMap<&'static str, Result<Arc<AgentBinary>, String>>>,
}

impl Agents {
    /// `pinned`: `--agent-binary`; the agents directories with `--agents-dir` first.
    pub fn new(pinned: Option<&Path>) -> anyhow::Result<Self> {
        let dir = AGENTS_DIR.get().cloned().flatten();
        Self::with_dir(pinned, dir.as_deref())
    }

    /// As [`Agents::new`], with `agents_dir` looked in first.
    pub fn with_dir(pinned: Option<&Path>, agents_dir: Option<&Path>) -> anyhow::Result<Self> {
        let pinned = match pinned {
            Some(path) => Some((path.to_path_buf(), Arc::new(AgentBinary::load(path)?))),
            None => None,
        };
        let own = std::env::current_exe()
            .map_err(|e| format!("cannot locate this program: {e}"))
            .and_then(|me| AgentBinary::load(&me).map_err(|e| format!("{e:#}")))
            .map(Arc::new);
        let mut dirs: Vec<PathBuf> = agents_dir.map(Path::to_path_buf).into_iter().collect();
        if let Some(beside) = std::env::current_exe()
            .ok()
            .and_then(|me| me.parent().map(|d| d.join("agents")))
        {
            dirs.push(beside);
        }
        if let Some(cache) = dirs::cache_dir() {
            dirs.push(cache.join("mp-remote/agents"));
        }
        Ok(Agents {
            pinned,
            dirs,
            own,
            found: Mutex::new(BTreeMap::new()),
        })
    }

    /// This very program as an agent (the local host, and the first guess of day-2 commands).
    pub fn own(&self) -> anyhow::Result<Arc<AgentBinary>> {
        self.own.clone().map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// The agent for `host` (see the module's rules).
    pub fn for_host(&self, host: &HostKind<'_>) -> anyhow::Result<Arc<AgentBinary>> {
        if host.local {
            return self.own();
        }
        let Some(arch) = target_arch(host.uname) else {
            anyhow::bail!(
                "{}: its CPU is {} and mp-remote builds agents for {} only: deploy it from a host of a supported architecture, or leave it out with --limit",
                host.name,
                if host.uname.is_empty() { "unknown" } else { host.uname },
                ARCHES.join(" and ")
            );
        };
        if let Some((path, agent)) = &self.pinned {
            if let (Some(needed), Some(has)) = (&agent.glibc, &host.glibc) {
                anyhow::ensure!(
                    has >= needed,
                    "{}: the agent cannot run here: it needs glibc {} and the host has {}; build it statically (`{}`) or on an older system, and pass it with --agent-binary",
                    host.name,
                    super::agent_glibc::display(needed),
                    super::agent_glibc::display(has),
                    build_command(arch)
                );
            }
            // An ELF for another CPU is refused; what is not an ELF (a wrapper script, say)
            // is the operator's explicit choice.
            if let Ok(built) = elf_arch(&agent.bytes) {
                anyhow::ensure!(
                    built == arch,
                    "{}: --agent-binary {} is an {built} build and the host is {arch}: pass the agent built for {arch} (`{}`)",
                    host.name,
                    path.display(),
                    build_command(arch)
                );
            }
            return Ok(agent.clone());
        }
        if let Ok(own) = &self.own {
            if fits(own, arch, host.glibc.as_deref()) {
                return Ok(own.clone());
            }
        }
        let found = self
            .found
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(arch)
            .or_insert_with(|| self.look_up(arch))
            .clone();
        found.map_err(|why| {
            let own = match &self.own {
                Ok(own) => match (own_arch(own), &own.glibc, &host.glibc) {
                    (Some(a), _, _) if a != arch => format!("this program is an {a} build"),
                    (_, Some(needed), Some(has)) => format!(
                        "this program needs glibc {} and the host has {}",
                        super::agent_glibc::display(needed),
                        super::agent_glibc::display(has)
                    ),
                    _ => "this program does not run on Linux".to_string(),
                },
                Err(e) => e.clone(),
            };
            anyhow::anyhow!(
                "{}: no agent for this {arch} host ({own}; {why}): build it with `{}`, or pass --agents-dir DIR or --agent-binary PATH",
                host.name,
                build_command(arch)
            )
        })
    }

    /// The first agents directory holding a good agent for `arch`.
    fn look_up(&self, arch: &str) -> Result<Arc<AgentBinary>, String> {
        let name = file_name(arch);
        for dir in &self.dirs {
            let path = dir.join(&name);
            if !path.exists() {
                continue;
            }
            return load_checked(&path, arch).map(Arc::new);
        }
        Err(format!(
            "no {name} in {}",
            self.dirs
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }
}

/// This program runs on a host of `arch` with glibc `host_glibc` (a static build runs on any).
fn fits(agent: &AgentBinary, arch: &str, host_glibc: Option<&[u32]>) -> bool {
    own_arch(agent) == Some(arch)
        && match (&agent.glibc, host_glibc) {
            (Some(needed), Some(has)) => has >= needed.as_slice(),
            _ => true,
        }
}

fn own_arch(agent: &AgentBinary) -> Option<&'static str> {
    elf_arch(&agent.bytes).ok()
}

/// An agents directory's file, refused when it is not an ELF for `arch` or differs from the
/// sha256 written beside it.
pub fn load_checked(path: &Path, arch: &str) -> Result<AgentBinary, String> {
    let agent = AgentBinary::load(path).map_err(|e| format!("{e:#}"))?;
    let shown = path.display();
    match elf_arch(&agent.bytes) {
        Ok(a) if a == arch => {}
        Ok(a) => return Err(format!("{shown} is an {a} build, not {arch}: rebuild it")),
        Err(e) => return Err(format!("{shown} is {e}: rebuild it")),
    }
    let sum_file = PathBuf::from(format!("{}.sha256", path.display()));
    if sum_file.exists() {
        let text = std::fs::read_to_string(&sum_file)
            .with_context(|| format!("cannot read {}", sum_file.display()))
            .map_err(|e| format!("{e:#}"))?;
        let expected = text.split_whitespace().next().unwrap_or("");
        if !expected.eq_ignore_ascii_case(&agent.sha256) {
            return Err(format!(
                "{shown} does not match its {} (sha256 {} expected, {} found): the file is damaged or was replaced; rebuild it",
                sum_file.display(),
                expected,
                agent.sha256
            ));
        }
    }
    Ok(agent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(class: u8, machine: u16) -> Vec<u8> {
        let mut b = vec![0x7f, b'E', b'L', b'F', class, 1];
        b.resize(18, 0);
        b.extend(machine.to_le_bytes());
        b.resize(64, 0);
        b
    }

    #[test]
    fn elf_headers_name_the_arch() {
        assert_eq!(elf_arch(&elf(2, 62)), Ok("x86_64"));
        assert_eq!(elf_arch(&elf(2, 183)), Ok("aarch64"));
        assert!(elf_arch(&elf(2, 243)).unwrap_err().contains("riscv64"));
        assert!(elf_arch(&elf(1, 40)).unwrap_err().contains("arm"));
        assert!(elf_arch(b"#!/bin/sh\n").unwrap_err().contains("not an ELF"));
        assert_eq!(target_arch("arm64"), Some("aarch64"));
        assert_eq!(target_arch("riscv64"), None);
        assert_eq!(target_arch("armv7l"), None);
    }

    /// A wrong-arch or damaged file in an agents directory is refused, naming it.
    #[test]
    fn agents_dir_files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name("aarch64"));
        std::fs::write(&path, elf(2, 62)).unwrap();
        assert!(load_checked(&path, "aarch64")
            .unwrap_err()
            .contains("is an x86_64 build, not aarch64"));
        std::fs::write(&path, elf(2, 183)).unwrap();
        assert!(load_checked(&path, "aarch64").is_ok());
        std::fs::write(format!("{}.sha256", path.display()), "00ff  x\n").unwrap();
        assert!(load_checked(&path, "aarch64")
            .unwrap_err()
            .contains("does not match"));
    }

    /// This program goes to hosts like the one it runs on; a riscv64 host is refused, naming
    /// it; an aarch64 host without an agent names the command that builds one.
    #[test]
    fn picks_per_host() {
        let empty = tempfile::tempdir().unwrap();
        let agents = Agents::with_dir(None, Some(empty.path())).unwrap();
        let host = |uname| HostKind {
            name: "h1",
            uname,
            glibc: None,
            local: false,
        };
        let own = agents.own().unwrap();
        let here = std::env::consts::ARCH;
        assert_eq!(agents.for_host(&host(here)).unwrap().sha256, own.sha256);
        let error = agents.for_host(&host("riscv64")).unwrap_err().to_string();
        assert!(error.starts_with("h1: its CPU is riscv64"), "{error}");
        let other = if here == "x86_64" {
            "aarch64"
        } else {
            "x86_64"
        };
        let error = agents.for_host(&host(other)).unwrap_err().to_string();
        assert!(
            error.contains(&format!("build it with `scripts/build-agents.sh {other}`")),
            "{error}"
        );
        // One in the agents directory is used.
        std::fs::write(
            empty.path().join(file_name(other)),
            elf(2, if other == "aarch64" { 183 } else { 62 }),
        )
        .unwrap();
        let agents = Agents::with_dir(None, Some(empty.path())).unwrap();
        assert_ne!(agents.for_host(&host(other)).unwrap().sha256, own.sha256);
    }
}
