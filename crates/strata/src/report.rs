//! How the `strata` command reports an error: one line, `error: ` and the
//! cause chain joined by `: `, each cause once; no backtrace.

use std::path::Path;

use strata_table::TableError;

/// The cause chain of `e`, outermost first, joined by `: `. A cause whose
/// text the previous one already contains (an error that prints its
/// source, such as `storage error: {0}`) is left out.
pub fn message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if parts.last().is_some_and(|prev| prev.contains(&text)) {
            continue;
        }
        parts.push(text);
    }
    parts.join(": ")
}

/// What the engine says when another process holds a directory's lock.
const LOCKED: &str = "is in use by another process";

/// The error for a database that would not open in `dir`: a directory
/// another process holds is said so plainly (the engine reports it as an
/// invalid argument, which it is not from the command line's view).
pub fn open_error(dir: &Path, e: TableError) -> anyhow::Error {
    if let TableError::Engine(strata_engine::Error::InvalidArgument(m)) = &e {
        if m.contains(LOCKED) {
            return anyhow::anyhow!(
                "data directory {} {LOCKED} (another strata serve?); \
                 stop it or choose another --data-dir",
                dir.display()
            );
        }
    }
    anyhow::Error::new(e).context(format!("cannot open the database in {}", dir.display()))
}

/// The error of opening a database on an object store.
pub fn open_storage_error(url: &str, e: TableError) -> anyhow::Error {
    anyhow::Error::new(e).context(format!("cannot open the database on {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn causes_are_joined_once_each() {
        let engine = strata_engine::Error::InvalidArgument("bad thing".into());
        let e = Err::<(), _>(TableError::Engine(engine))
            .context("opening x")
            .unwrap_err();
        assert_eq!(
            message(&e),
            "opening x: storage error: invalid argument: bad thing"
        );
        let io = std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        let e = anyhow::Error::new(io).context("cannot listen on :1");
        assert_eq!(message(&e), "cannot listen on :1: Address already in use");
    }

    #[test]
    fn a_locked_directory_is_not_an_invalid_argument() {
        let m = format!("d {LOCKED} (would block); one directory serves one engine");
        let e = open_error(
            Path::new("d"),
            TableError::Engine(strata_engine::Error::InvalidArgument(m)),
        );
        let msg = message(&e);
        assert!(msg.starts_with("data directory d is in use"), "{msg}");
        assert!(!msg.contains("invalid argument"), "{msg}");
        let e = open_error(Path::new("d"), TableError::Corrupt("x".into()));
        assert_eq!(
            message(&e),
            "cannot open the database in d: corrupt data: x"
        );
    }
}
