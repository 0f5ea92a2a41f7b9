//! Byte sizes on the command line: `512MiB`, `4MiB`, `64KiB`, `1GiB`,
//! `1048576` (bytes), or `off` where a limit can be switched off.

/// Parses a size such as `64MiB` (binary units; `KB`/`MB`/`GB` are read as
/// the same binary units, as operators usually mean them).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("{s:?} is not a size (try 64MiB, 512MiB, 1GiB)"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: the number is too large"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use KiB, MiB, GiB)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// A size limit that can be switched off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limit(pub Option<u64>);

/// A size, or `off`.
pub fn parse_size_or_off(s: &str) -> Result<Limit, String> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(Limit(None));
    }
    parse_size(s).map(|b| Limit(Some(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("512mib"), Ok(512 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64KB"), Ok(64 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("4XB").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000TiB").is_err());
        assert_eq!(parse_size_or_off("off"), Ok(Limit(None)));
        assert_eq!(parse_size_or_off("64MiB"), Ok(Limit(Some(64 << 20))));
    }
}
