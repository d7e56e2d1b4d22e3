//! Which OS a host runs, from `/etc/os-release` (Linux) or `sw_vers` (macOS).

use std::collections::HashMap;

use super::model::Os;

/// Parses os-release(5) text. Per the spec a missing `ID` means `linux`.
pub fn from_os_release(text: &str) -> Os {
    let vars: HashMap<&str, String> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                return None;
            }
            let (k, v) = line.split_once('=')?;
            Some((k.trim(), unquote(v.trim())))
        })
        .collect();
    let get = |k: &str| vars.get(k).filter(|v| !v.is_empty()).cloned();
    let id = get("ID").unwrap_or_else(|| "linux".to_string());
    let family = family(&id, get("ID_LIKE").as_deref().unwrap_or(""));
    let pretty_name = get("PRETTY_NAME")
        .or_else(|| get("NAME"))
        .unwrap_or_else(|| id.clone());
    Os {
        version_id: get("VERSION_ID").unwrap_or_default(),
        id,
        family,
        pretty_name,
    }
}

/// Parses `sw_vers` output (`ProductName:\tmacOS`, `ProductVersion:\t14.4.1`, ...).
pub fn from_sw_vers(text: &str) -> Os {
    let field = |name: &str| {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let version_id = field("ProductVersion").unwrap_or_default();
    let name = field("ProductName").unwrap_or_else(|| "macOS".to_string());
    let pretty_name = format!("{name} {version_id}").trim_end().to_string();
    Os {
        id: "macos".to_string(),
        version_id,
        family: "macos".to_string(),
        pretty_name,
    }
}

/// The packaging world: decides apt vs dnf/yum and package names later. `ID` is checked before
/// `ID_LIKE` so that a derivative is classified by its own name first.
pub fn family(id: &str, id_like: &str) -> String {
    std::iter::once(id)
        .chain(id_like.split_whitespace())
        .find_map(|name| match name {
            "debian" | "ubuntu" => Some("debian"),
            "rhel" | "centos" | "rocky" | "almalinux" | "fedora" => Some("rhel"),
            _ => None,
        })
        .unwrap_or(id)
        .to_string()
}

/// os-release values are shell-style: bare, `"double"` (with `\` escapes) or `'single'` quoted.
fn unquote(v: &str) -> String {
    if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
        let mut out = String::new();
        let mut chars = v[1..v.len() - 1].chars();
        while let Some(c) = chars.next() {
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else {
                out.push(c);
            }
        }
        out
    } else if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_from_id_and_id_like() {
        let table = [
            ("debian", "", "debian"),
            ("ubuntu", "debian", "debian"),
            ("linuxmint", "ubuntu debian", "debian"),
            ("rocky", "rhel centos fedora", "rhel"),
            ("centos", "rhel fedora", "rhel"),
            ("almalinux", "rhel centos fedora", "rhel"),
            ("fedora", "", "rhel"),
            ("amzn", "centos rhel fedora", "rhel"),
            ("alpine", "", "alpine"),
            ("arch", "", "arch"),
        ];
        for (id, like, want) in table {
            assert_eq!(family(id, like), want, "family({id:?}, {like:?})");
        }
    }

    #[test]
    fn os_release_quoting_comments_and_defaults() {
        let os = from_os_release(
            "# comment\nNAME='Some Linux'\nPRETTY_NAME=\"Some \\\"Linux\\\" 1\"\nVERSION_ID=\n",
        );
        assert_eq!(os.id, "linux");
        assert_eq!(os.family, "linux");
        assert_eq!(os.version_id, "");
        assert_eq!(os.pretty_name, "Some \"Linux\" 1");
    }

    #[test]
    fn sw_vers_fields() {
        let os = from_sw_vers(
            "ProductName:\t\tmacOS\nProductVersion:\t\t14.4.1\nBuildVersion:\t\t23E224\n",
        );
        assert_eq!(os.id, "macos");
        assert_eq!(os.family, "macos");
        assert_eq!(os.version_id, "14.4.1");
        assert_eq!(os.pretty_name, "macOS 14.4.1");
    }
}
