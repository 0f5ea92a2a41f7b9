//! `strata tablets TABLE`: asks a running server (StrataAdmin/ListTablets)
//! for a table's tablets and prints one line per tablet: its row range,
//! size on disk, memtable size and files per level.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use strata_server::pb::strata_admin_client::StrataAdminClient;
use strata_server::tablets::{ListTabletsRequest, Tablet};

/// How long to wait for the server to accept the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Levels the FILES header names when no tablet reports any.
const LEVELS_DEFAULT: usize = 7;

/// The project of a bare table id when --project is not given (the one
/// the README's examples use).
pub const DEFAULT_PROJECT: &str = "my-project";
/// The instance of a bare table id when --instance is not given.
pub const DEFAULT_INSTANCE: &str = "my-instance";

/// A table on a running server: what `strata tablets` and `strata
/// compact` are asked.
#[derive(clap::Args)]
pub struct TableArgs {
    /// `projects/P/instances/I/tables/T`, or a bare table id `T`
    /// (expanded with --project and --instance).
    pub table: String,
    /// The server's address, `HOST:PORT` (or a full `http://` URI);
    /// without it, BIGTABLE_EMULATOR_HOST, as Bigtable clients do.
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "BIGTABLE_EMULATOR_HOST",
        default_value = "127.0.0.1:8086"
    )]
    pub server: String,
    /// Project of a bare table id.
    #[arg(long, default_value = DEFAULT_PROJECT)]
    pub project: String,
    /// Instance of a bare table id.
    #[arg(long, default_value = DEFAULT_INSTANCE)]
    pub instance: String,
}

/// `projects/P/instances/I/tables/T` for a bare id `T`; a name with a `/`
/// is taken as given (the server checks it).
pub fn full_table_name(table: &str, project: &str, instance: &str) -> String {
    if table.contains('/') {
        table.to_string()
    } else {
        format!("projects/{project}/instances/{instance}/tables/{table}")
    }
}

impl TableArgs {
    /// The table's full name.
    pub fn name(&self) -> String {
        full_table_name(&self.table, &self.project, &self.instance)
    }
}

/// Runs `f` to its end on a runtime of the calling thread.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    Ok(rt.block_on(f))
}

/// Lists the tablets and prints them to stdout.
pub fn run(args: TableArgs) -> Result<()> {
    let name = args.name();
    let tablets = block_on(list(&args.server, &name))??;
    print!("{}", render(&tablets));
    Ok(())
}

/// A channel to the server at `server` (`HOST:PORT` or a URI).
pub async fn connect(server: &str) -> Result<tonic::transport::Channel> {
    let uri = if server.contains("://") {
        server.to_string()
    } else {
        format!("http://{server}")
    };
    tonic::transport::Endpoint::from_shared(uri)
        .with_context(|| format!("invalid server address {server:?} (want HOST:PORT)"))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .with_context(|| format!("cannot connect to the Strata server at {server}"))
}

/// Connects to `server` and calls ListTablets for `name`.
async fn list(server: &str, name: &str) -> Result<Vec<Tablet>> {
    let channel = connect(server).await?;
    let reply = StrataAdminClient::new(channel)
        .list_tablets(ListTabletsRequest {
            table_name: name.to_string(),
        })
        .await
        .map_err(|s| anyhow!("{:?}: {}", s.code(), s.message()))
        .with_context(|| format!("listing the tablets of {name} on {server}"))?;
    Ok(reply.into_inner().tablets)
}

/// A row key for people: printable ASCII as is (`\` and `"` escaped with a
/// backslash), every other byte as `\xNN`.
pub fn escape_row(row: &[u8]) -> String {
    let mut s = String::with_capacity(row.len());
    for &b in row {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

/// A byte count for people: `512 B`, `1.5 KiB`, `61.2 MiB`, `3.0 GiB`
/// (GiB is the largest unit).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KiB", "MiB", "GiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A tablet boundary: a quoted escaped row, or `absent` for an open end.
fn bound(row: Option<&[u8]>, absent: &str) -> String {
    match row {
        Some(r) => format!("\"{}\"", escape_row(r)),
        None => absent.to_string(),
    }
}

/// The table of tablets, aligned, then the totals line.
pub fn render(tablets: &[Tablet]) -> String {
    let levels = tablets
        .iter()
        .map(|t| t.files_per_level.len())
        .max()
        .filter(|&n| n > 0)
        .unwrap_or(LEVELS_DEFAULT);
    // On a cluster: who serves each tablet, at which epoch, in which state.
    let cluster = tablets.iter().any(|t| !t.state.is_empty());
    let mut header = vec![
        "TABLET".to_string(),
        "START ROW".to_string(),
        "END ROW".to_string(),
    ];
    if cluster {
        header.extend(["OWNER".to_string(), "STATE".to_string()]);
    }
    header.extend([
        "SIZE".to_string(),
        "MEMTABLE".to_string(),
        format!("FILES (L0..L{})", levels - 1),
        "SHARED".to_string(),
    ]);
    let mut rows = vec![header];
    for t in tablets {
        let start = (!t.start_row.is_empty()).then_some(t.start_row.as_slice());
        let end = t.has_end.then_some(t.end_row.as_slice());
        let files: Vec<String> = t.files_per_level.iter().map(u32::to_string).collect();
        let id = if cluster {
            t.cluster_id
        } else {
            u64::from(t.id)
        };
        let mut row = vec![id.to_string(), bound(start, "(start)"), bound(end, "(end)")];
        if cluster {
            let owner = if t.owner.is_empty() {
                "-"
            } else {
                t.owner.as_str()
            };
            row.extend([
                owner.to_string(),
                format!("{} (epoch {})", t.state, t.epoch),
            ]);
        }
        row.extend([
            human_size(t.size_bytes),
            human_size(t.memtable_bytes),
            files.join(" "),
            t.shared_files.to_string(),
        ]);
        rows.push(row);
    }
    let mut widths = vec![0usize; rows[0].len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}  ", w = *w));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let size: u64 = tablets.iter().map(|t| t.size_bytes).sum();
    let memtables: u64 = tablets.iter().map(|t| t.memtable_bytes).sum();
    let noun = if tablets.len() == 1 {
        "tablet"
    } else {
        "tablets"
    };
    out.push_str(&format!(
        "{} {noun}, total {} on disk, {} in memtables\n",
        tablets.len(),
        human_size(size),
        human_size(memtables)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_escaped() {
        assert_eq!(escape_row(b"user0500"), "user0500");
        assert_eq!(escape_row(b""), "");
        assert_eq!(escape_row(b"a b~"), "a b~");
        assert_eq!(escape_row(&[0x00, b'k', 0xff, 0x7f]), "\\x00k\\xff\\x7f");
        assert_eq!(escape_row(b"\n\t"), "\\x0a\\x09");
        assert_eq!(escape_row(b"q\"b\\"), "q\\\"b\\\\");
        assert_eq!(escape_row("é".as_bytes()), "\\xc3\\xa9");
    }

    #[test]
    fn sizes_are_human() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size((61.2 * (1 << 20) as f64) as u64), "61.2 MiB");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(human_size(5 << 40), "5120.0 GiB");
    }

    #[test]
    fn bare_ids_are_expanded() {
        assert_eq!(
            full_table_name("t", "p", "i"),
            "projects/p/instances/i/tables/t"
        );
        let full = "projects/x/instances/y/tables/z";
        assert_eq!(full_table_name(full, "p", "i"), full);
    }

    #[test]
    fn tablets_render_as_aligned_lines_and_totals() {
        let t = |id, start: &[u8], end: Option<&[u8]>, size, mem| Tablet {
            id,
            start_row: start.to_vec(),
            end_row: end.unwrap_or_default().to_vec(),
            has_end: end.is_some(),
            size_bytes: size,
            memtable_bytes: mem,
            files_per_level: vec![2, 0, 3, 0, 0, 0, 0],
            shared_files: 0,
            ..Tablet::default()
        };
        let out = render(&[
            t(12, b"", Some(b"user0500"), 64_172_851, 1_572_864),
            t(13, b"user0500", None, 0, 100),
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("TABLET  START ROW"), "{out}");
        assert!(lines[0].contains("FILES (L0..L6)"), "{out}");
        assert_eq!(
            lines[1],
            "12      (start)     \"user0500\"  61.2 MiB  1.5 MiB   2 0 3 0 0 0 0   0"
        );
        assert!(lines[2].starts_with("13      \"user0500\"  (end)"), "{out}");
        assert_eq!(
            lines[3],
            "2 tablets, total 61.2 MiB on disk, 1.5 MiB in memtables"
        );
        assert_eq!(
            render(&[]),
            format!(
                "{}0 tablets, total 0 B on disk, 0 B in memtables\n",
                "TABLET  START ROW  END ROW  SIZE  MEMTABLE  FILES (L0..L6)  SHARED\n"
            )
        );
    }

    #[test]
    fn a_clusters_tablets_show_owner_and_state() {
        let out = render(&[
            Tablet {
                cluster_id: 7,
                owner: "s1@42".into(),
                epoch: 3,
                state: "serving".into(),
                has_end: true,
                end_row: b"m".to_vec(),
                files_per_level: vec![1, 0],
                ..Tablet::default()
            },
            Tablet {
                cluster_id: 8,
                start_row: b"m".to_vec(),
                epoch: 4,
                state: "recovering".into(),
                ..Tablet::default()
            },
        ]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("TABLET  START ROW  END ROW  OWNER  STATE"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("7       (start)    \"m\"      s1@42  serving (epoch 3)"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("8       \"m\"        (end)    -      recovering (epoch 4)"),
            "{out}"
        );
    }
}
