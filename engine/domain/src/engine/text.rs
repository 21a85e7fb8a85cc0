//! The short texts a decision writes (audit rules, action-id causes), built by copying their parts: the formatting
//! machinery costs several times the copy, and these are built for nearly every decision.

use compact_str::CompactString;

/// `parts` one after the other.
pub(super) fn joined(parts: &[&str]) -> CompactString {
    let mut s = CompactString::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        s.push_str(p);
    }
    s
}

/// `tag` followed by `n` in decimal.
pub(super) fn tagged(tag: &str, n: i32) -> CompactString {
    joined(&[tag, itoa::Buffer::new().format(n)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use compact_str::format_compact;

    #[test]
    fn texts_read_as_formatting_would_write_them() {
        assert_eq!(
            joined(&["strategy/", "early", "/", "sms-d1"]),
            format_compact!("strategy/{}/{}", "early", "sms-d1")
        );
        assert_eq!(joined(&[]), "");
        let long = "a-strategy-id-well-past-the-inline-length";
        assert_eq!(joined(&["policy/", long]), format!("policy/{long}"));
        for n in [0, 7, -1, 739_000, i32::MIN, i32::MAX] {
            assert_eq!(tagged("due:", n), format_compact!("due:{n}"));
        }
    }
}
