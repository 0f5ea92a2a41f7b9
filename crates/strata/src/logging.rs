//! Logs to stderr: `RUST_LOG` picks what is logged (default `info`),
//! `--log-format` how (text, coloured only on a terminal, or JSON lines).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// What `RUST_LOG` does, for `--help`.
pub const HELP: &str = "\
Logging: to stderr. RUST_LOG picks what is logged (default: info), e.g.
  RUST_LOG=debug strata serve
  RUST_LOG=info,strata_engine=debug strata serve
--log-format json writes one JSON object per line; text (the default) is
coloured only when stderr is a terminal.";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) {
    let mut bad_rust_log = None;
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::try_new(&v).unwrap_or_else(|e| {
            bad_rust_log = Some((v, e));
            EnvFilter::new("info")
        }),
        _ => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
    if let Some((value, e)) = bad_rust_log {
        tracing::warn!("ignoring RUST_LOG={value:?} ({e}); logging at info");
    }
}
