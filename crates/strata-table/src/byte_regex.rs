//! RE2 patterns over bytes, as Bigtable's regex filters use them.
//!
//! Bigtable (and its emulator, which compiles with RE2's Latin-1 option)
//! treats a filter's pattern and the bytes it is matched against as byte
//! strings, one character per byte, matched whole:
//!
//! - a pattern need not be UTF-8: a byte >= 0x80 is the character of that
//!   value, so a client's literal-escaping helper (which copies such bytes
//!   raw) matches exactly the cells that hold those bytes;
//! - a UTF-8 pattern like `☃` is three such characters and matches the same
//!   three bytes in a value;
//! - `\C` matches any byte, `.` any byte but `\n`;
//! - the match is implicitly anchored at both ends.
//!
//! The regex crate's byte regexes with Unicode off have these semantics
//! once every byte outside printable ASCII is written as `\xNN`. This module
//! rewrites the pattern that way (and RE2's `\C` and `\Q…\E`, which the
//! crate lacks) and compiles it anchored.

use regex::bytes::{Regex, RegexBuilder};

/// Compiled size limit of one regex.
const REGEX_SIZE_BYTES_MAX: usize = 1 << 20;
/// Longest pattern accepted, in bytes (Bigtable caps filters by request
/// size; this keeps the rewritten pattern bounded too).
pub const PATTERN_BYTES_MAX: usize = 64 << 10;

/// Why a pattern was rejected: a message naming the pattern and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError(pub String);

/// Compiles an RE2 pattern on bytes for whole-value matches.
pub fn compile(pattern: &[u8]) -> Result<Regex, PatternError> {
    if pattern.len() > PATTERN_BYTES_MAX {
        return Err(PatternError(format!(
            "pattern is {} bytes, more than the {PATTERN_BYTES_MAX} allowed",
            pattern.len()
        )));
    }
    let translated = translate(pattern)?;
    let re = RegexBuilder::new(&format!(r"(?-u)\A(?:{translated})\z"))
        .unicode(false)
        .octal(true)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .build()
        .map_err(|e| PatternError(format!("{:?}: {e}", show(pattern))))?;
    Ok(re)
}

/// The pattern for messages: UTF-8 where it is, `\xNN` where not.
fn show(pattern: &[u8]) -> String {
    pattern.escape_ascii().to_string()
}

fn push_byte(out: &mut String, b: u8) {
    use std::fmt::Write;
    let _ = write!(out, r"\x{b:02X}");
}

/// Whether `b` can be copied into the rewritten pattern as it is.
fn copies_raw(b: u8) -> bool {
    b.is_ascii_graphic() || b == b' '
}

/// Rewrites an RE2 Latin-1 pattern into regex-crate syntax (Unicode off):
/// bytes outside printable ASCII become `\xNN`; `\` before a byte that is
/// not an ASCII letter or digit makes that byte literal (RE2's rule, which
/// also keeps the crate's own extensions such as `\<` from applying); `\C`
/// becomes "any byte"; `\Q…\E` becomes its bytes, each literal.
fn translate(pattern: &[u8]) -> Result<String, PatternError> {
    let mut out = String::with_capacity(pattern.len() * 2 + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < pattern.len() {
        let b = pattern[i];
        i += 1;
        if b == b'\\' {
            let Some(&n) = pattern.get(i) else {
                return Err(PatternError(format!(
                    "{:?}: trailing backslash",
                    show(pattern)
                )));
            };
            i += 1;
            match n {
                b'C' if !in_class => out.push_str("(?s:.)"),
                b'Q' => {
                    // Literal text up to `\E` or the end.
                    while i < pattern.len() {
                        if pattern[i] == b'\\' && pattern.get(i + 1) == Some(&b'E') {
                            i += 2;
                            break;
                        }
                        push_byte(&mut out, pattern[i]);
                        i += 1;
                    }
                }
                b'E' => {} // A stray \E ends nothing (RE2 ignores it).
                n if n.is_ascii_alphanumeric() => {
                    out.push('\\');
                    out.push(n as char);
                }
                n => push_byte(&mut out, n),
            }
            continue;
        }
        if in_class {
            if b == b']' {
                in_class = false;
                out.push(']');
            } else if b == b'[' && pattern.get(i) == Some(&b':') {
                // A POSIX class `[:name:]` inside a bracket expression.
                let end = pattern[i..]
                    .windows(2)
                    .position(|w| w == b":]")
                    .map(|p| i + p + 2)
                    .ok_or_else(|| {
                        PatternError(format!("{:?}: unterminated [:class:]", show(pattern)))
                    })?;
                out.push('[');
                for &c in &pattern[i..end] {
                    push_class_byte(&mut out, c);
                }
                i = end;
            } else {
                push_class_byte(&mut out, b);
            }
            continue;
        }
        if b == b'[' {
            in_class = true;
            out.push('[');
            // `]` first (after an optional `^`) is a member, not the end.
            if pattern.get(i) == Some(&b'^') {
                out.push('^');
                i += 1;
            }
            if pattern.get(i) == Some(&b']') {
                out.push_str(r"\]");
                i += 1;
            }
        } else if copies_raw(b) {
            out.push(b as char);
        } else {
            push_byte(&mut out, b);
        }
    }
    Ok(out)
}

/// A byte inside a bracket expression: ASCII that the crate reads as RE2
/// does is copied, the rest written as `\xNN`.
fn push_class_byte(out: &mut String, b: u8) {
    // The crate gives `[`, `&&`, `--` and `~~` meaning inside classes
    // (nesting, set operations); RE2 reads them as members.
    if copies_raw(b) && !matches!(b, b'[' | b'&' | b'~') {
        out.push(b as char);
    } else {
        push_byte(out, b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &[u8], value: &[u8]) -> bool {
        compile(pattern).unwrap().is_match(value)
    }

    /// What the Python client's LiteralValueFilter sends for `value`.
    fn python_literal(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in value {
            if b == 0 {
                out.extend_from_slice(br"\x00");
                continue;
            }
            if !b.is_ascii_alphanumeric() && b != b'_' && b < 128 {
                out.push(b'\\');
            }
            out.push(b);
        }
        out
    }

    /// RE2's QuoteMeta (what Go's and Java's clients use).
    fn quote_meta(value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in value {
            if b == 0 {
                out.extend_from_slice(br"\x00");
            } else if !b.is_ascii_alphanumeric() && b != b'_' && b < 0x80 {
                out.push(b'\\');
                out.push(b);
            } else {
                out.push(b);
            }
        }
        out
    }

    #[test]
    fn every_byte_literal_matches_only_itself() {
        for b in 0..=255u8 {
            for quote in [python_literal, quote_meta] {
                let re = compile(&quote(&[b])).unwrap();
                for v in 0..=255u8 {
                    assert_eq!(
                        re.is_match(&[v]),
                        v == b,
                        "pattern for {b:#04x} on {v:#04x}"
                    );
                }
                assert!(!re.is_match(&[b, b]));
                assert!(!re.is_match(b""));
            }
        }
    }

    #[test]
    fn every_byte_as_raw_pattern_byte() {
        // A raw byte that is not a regex metacharacter is itself.
        for b in (0..=255u8).filter(|b| !br"\.+*?()|[]{}^$".contains(b)) {
            assert!(m(&[b], &[b]), "{b:#04x}");
            assert!(!m(&[b], &[b.wrapping_add(1)]), "{b:#04x}");
        }
    }

    #[test]
    fn packed_ints_match_exactly() {
        for n in [
            -1i64,
            0,
            1,
            2852126720,
            -1431655766,
            i64::MIN,
            i64::MAX,
            0x7f80_ff00_0a0d_5c5d,
        ] {
            let bytes = n.to_be_bytes();
            for quote in [python_literal, quote_meta] {
                let re = compile(&quote(&bytes)).unwrap();
                assert!(re.is_match(&bytes), "{n}");
                assert!(!re.is_match(&(n ^ 1).to_be_bytes()), "{n}");
                assert!(!re.is_match(&bytes[1..]), "{n}");
            }
        }
    }

    #[test]
    fn any_byte_and_dot() {
        for b in 0..=255u8 {
            assert!(m(br"\C", &[b]));
            assert_eq!(m(b".", &[b]), b != b'\n', "{b:#04x}");
        }
        assert!(m(br"\C*", b"a\nb\xff"));
        assert!(!m(br".*", b"a\nb"));
        assert!(m(br"(?s).*", b"a\nb"));
        // `.` is one byte, never one UTF-8 character.
        assert!(!m(b".", "☃".as_bytes()));
        assert!(m(b"...", "☃".as_bytes()));
    }

    #[test]
    fn utf8_patterns_match_their_bytes() {
        assert!(m("☃".as_bytes(), "☃".as_bytes()));
        assert!(m("a☃+".as_bytes(), "a☃".as_bytes()));
        // Latin-1: `+` repeats the last byte of the snowman, not the snowman.
        assert!(m("☃+".as_bytes(), b"\xe2\x98\x83\x83"));
        assert!(m("[☃]".as_bytes(), b"\x98"));
        assert!(m("é|x".as_bytes(), "é".as_bytes()));
    }

    #[test]
    fn whole_match_is_implicit() {
        assert!(m(b"abc", b"abc"));
        assert!(!m(b"abc", b"abcd"));
        assert!(!m(b"abc", b"xabc"));
        assert!(!m(b"a|b", b"ab"));
        assert!(m(b"a|b", b"b"));
        assert!(m(b"", b""));
        assert!(!m(b"", b"a"));
    }

    #[test]
    fn classes_escapes_and_quoting() {
        assert!(m(br"[\x80-\xff]+", b"\x80\xfe\xff"));
        assert!(!m(br"[\x80-\xff]+", b"\x7f"));
        assert!(m(b"[\x80-\xff]+", b"\x90\xa0"));
        assert!(m(b"[^\x00-\x7f]", b"\xc3"));
        assert!(m(b"[]a]+", b"]a]"));
        assert!(m(b"[^]a]", b"b"));
        assert!(m(b"[[:digit:]x]+", b"1x2"));
        assert!(m(b"[a&&b]+", b"a&b"));
        assert!(m(b"[a~~b]", b"~"));
        assert!(m(br"\d+\s\w+", b"42 abc"));
        assert!(m(br"\Q.*+\E[a]", b".*+a"));
        assert!(m(br"\Qa\xff", b"a\\xff"));
        assert!(m(br"\101", b"A"));
        assert!(m(br"\<x\>", b"<x>"));
        assert!(m(br"a\-b", b"a-b"));
        assert!(m(b"(?i)abc", b"ABC"));
    }

    #[test]
    fn bad_patterns_are_errors_naming_the_pattern() {
        for p in [&b"("[..], b"[a", br"a\", b"a{2,1}", br"\pL", b"[[:nope"] {
            let e = compile(p).unwrap_err();
            assert!(
                e.0.contains(&format!("{:?}", show(p))),
                "{:?}: {}",
                String::from_utf8_lossy(p),
                e.0
            );
        }
        assert!(compile(&vec![b'a'; PATTERN_BYTES_MAX + 1]).is_err());
    }
}
