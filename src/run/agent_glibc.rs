//! Which glibc the agent binary needs: the highest `GLIBC_2.N` symbol version it references.
//! A host with an older glibc cannot run it; saying so before pushing beats a dynamic-linker
//! error in the middle of a deploy.

/// The highest `GLIBC_x.y[.z]` version named in `binary`, as numbers; None for a static or
/// non-glibc build.
pub fn required(binary: &[u8]) -> Option<Vec<u32>> {
    const TAG: &[u8] = b"GLIBC_";
    let mut best: Option<Vec<u32>> = None;
    let mut rest = binary;
    while let Some(at) = find(rest, TAG) {
        let after = &rest[at + TAG.len()..];
        let digits: Vec<u8> = after
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .copied()
            .collect();
        if let Some(version) = parse(&String::from_utf8_lossy(&digits)) {
            if best.as_ref().is_none_or(|b| version > *b) {
                best = Some(version);
            }
        }
        rest = &after[digits.len()..];
    }
    best
}

/// `"2.36"` -> [2, 36]; anything else (`"PRIVATE"`, `""`) -> None.
pub fn parse(text: &str) -> Option<Vec<u32>> {
    let parts: Option<Vec<u32>> = text
        .trim_end_matches('.')
        .split('.')
        .map(|p| p.parse().ok())
        .collect();
    parts.filter(|p| p.len() >= 2)
}

pub fn display(version: &[u32]) -> String {
    version
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highest_symbol_version_wins() {
        let bytes = b"\0GLIBC_2.2.5\0GLIBC_2.34\0GLIBC_PRIVATE\0GLIBC_2.17\0";
        assert_eq!(required(bytes), Some(vec![2, 34]));
        assert_eq!(required(b"no glibc here"), None);
        assert!(parse("2.36").unwrap() > parse("2.4").unwrap());
        assert_eq!(display(&[2, 34]), "2.34");
    }
}
