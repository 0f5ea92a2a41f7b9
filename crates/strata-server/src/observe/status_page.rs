//! The status page at `/`: one server-rendered HTML page, no scripts and
//! no external assets, with what an operator looks at first: the server,
//! its memory and commit log, the RPCs served, and every table with its
//! tablets.

use std::fmt::Write;

use super::{Observer, Phase};

/// Tablets listed per table; the rest are counted.
const TABLETS_SHOWN_MAX: usize = 1000;

/// `s` with HTML's special characters escaped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A row key as text: printable ASCII as it is, other bytes as `\xNN`.
fn row(key: &[u8]) -> String {
    let mut out = String::new();
    for &b in key {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    esc(&out)
}

/// Bytes in binary units (KiB, MiB, ...).
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!(
        "{}d {:02}h {:02}m {:02}s",
        s / 86400,
        s / 3600 % 24,
        s / 60 % 60,
        s % 60
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1.5em;color:#222}\
table{border-collapse:collapse;margin-bottom:1.5em}\
th,td{border:1px solid #ccc;padding:2px 8px;text-align:right}\
th{background:#eee}td.l,th.l{text-align:left}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.5em}";

/// The page, as it is now.
pub(crate) fn render(obs: &Observer) -> String {
    let mut p = String::new();
    let f = obs.facts();
    let phase = match obs.phase() {
        Phase::Starting => "starting (opening the database)",
        Phase::Serving => "serving",
        Phase::Stopping => "stopping",
    };
    let _ = write!(
        p,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Strata {v}</title><style>{STYLE}</style></head><body>\
         <h1>Strata {v}</h1><table id=\"server\">\
         <tr><th class=\"l\">state</th><td class=\"l\" id=\"phase\">{phase}</td></tr>\
         <tr><th class=\"l\">uptime</th><td class=\"l\">{up}</td></tr>\
         <tr><th class=\"l\">storage</th><td class=\"l\">{st}</td></tr></table>",
        v = esc(f.version),
        up = duration(obs.uptime()),
        st = esc(&f.storage),
    );
    if let Some(db) = obs.database() {
        engine_section(&mut p, obs, &db);
        rpc_section(&mut p, obs);
        tables_section(&mut p, obs, &db);
    } else if obs.phase() == Phase::Serving {
        // A cluster server: every tablet it serves is an engine of its own.
        rpc_section(&mut p, obs);
        p.push_str(
            "<p>A cluster server: <code>strata tablets TABLE</code> lists a table's tablets and their servers.</p>",
        );
    } else {
        p.push_str("<p>The database is not open.</p>");
    }
    p.push_str("<p><a href=\"/metrics\">metrics</a></p></body></html>\n");
    p
}

fn engine_section(p: &mut String, obs: &Observer, db: &strata_table::Database) {
    let f = obs.facts();
    let st = db.engine().stats();
    let mem = db.engine().memtable_usage();
    let lookups = st.block_cache_hits + st.block_cache_misses;
    let hit_rate = if lookups == 0 {
        "-".to_string()
    } else {
        format!(
            "{:.1}%",
            st.block_cache_hits as f64 * 100.0 / lookups as f64
        )
    };
    let per_group = |n: u64, groups: u64| {
        if groups == 0 {
            "-".to_string()
        } else {
            format!("{:.1}", n as f64 / groups as f64)
        }
    };
    let rows: [(&str, String); 11] = [
        (
            "memtables",
            format!(
                "{} active, {} sealed, of {} budget",
                bytes(mem.active_bytes as u64),
                bytes(mem.sealed_bytes as u64),
                bytes(f.memtable_budget_bytes)
            ),
        ),
        ("write stalls", st.write_stalls.to_string()),
        (
            "block cache",
            format!(
                "{} of {}, hit rate {hit_rate}",
                bytes(st.block_cache_usage_bytes),
                bytes(f.block_cache_bytes)
            ),
        ),
        (
            "commit log",
            format!(
                "{} segments, {} kept, {} written",
                st.log_segments,
                bytes(st.log_bytes_retained),
                bytes(st.log_bytes_written)
            ),
        ),
        (
            "group commits",
            format!(
                "{} groups, {} batches per group",
                st.commit_groups,
                per_group(st.commit_batches, st.commit_groups)
            ),
        ),
        (
            "log time per durable group",
            if st.commit_durable_groups == 0 {
                "-".to_string()
            } else {
                format!(
                    "{:.0} µs",
                    st.commit_log_micros as f64 / st.commit_durable_groups as f64
                )
            },
        ),
        (
            "flushes",
            format!("{}, {} written", st.flushes, bytes(st.flush_bytes_written)),
        ),
        (
            "compactions",
            format!(
                "{}, {} read, {} written",
                st.compactions,
                bytes(st.compaction_bytes_read),
                bytes(st.compaction_bytes_written)
            ),
        ),
        ("user bytes written", bytes(st.user_bytes_written)),
        ("storage bytes written", bytes(st.storage_bytes_written)),
        (
            "write amplification",
            format!("{:.2}", st.write_amplification()),
        ),
    ];
    p.push_str("<h2>Engine</h2><table id=\"engine\">");
    for (k, v) in rows {
        let _ = write!(
            p,
            "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>",
            esc(&v)
        );
    }
    p.push_str("</table>");
}

fn rpc_section(p: &mut String, obs: &Observer) {
    p.push_str("<h2>RPCs</h2><table id=\"rpcs\"><tr><th class=\"l\">RPC</th><th>started</th><th>OK</th><th class=\"l\">errors</th></tr>");
    for m in obs.rpc.all() {
        let errors: Vec<String> = m
            .error_counts()
            .into_iter()
            .map(|(code, n)| format!("{code} {n}"))
            .collect();
        let _ = write!(
            p,
            "<tr><td class=\"l\">{}/{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&m.service),
            esc(&m.method),
            m.started.get(),
            m.ok_count(),
            esc(&errors.join(", ")),
        );
    }
    p.push_str("</table>");
}

fn tables_section(p: &mut String, obs: &Observer, db: &strata_table::Database) {
    let tables = db.list_tables("");
    let _ = write!(p, "<h2>Tables ({})</h2>", tables.len());
    p.push_str("<table id=\"tables\"><tr><th class=\"l\">table</th><th>tablets</th><th>size</th><th>memtable</th><th>rows read</th><th>rows written</th></tr>");
    let mut details = String::new();
    for t in &tables {
        let Ok(tablets) = db.tablets(&t.name) else {
            continue; // deleted meanwhile
        };
        let size: u64 = tablets.iter().map(|t| t.size_bytes).sum();
        let mem: u64 = tablets.iter().map(|t| t.memtable_bytes).sum();
        let c = obs.tables.table_if_known(&t.name);
        let (read, written) = c.map_or((0, 0), |c| (c.rows_read(), c.rows_written()));
        let name = esc(&t.name);
        let _ = write!(
            p,
            "<tr><td class=\"l\"><a href=\"#t-{name}\">{name}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{read}</td><td>{written}</td></tr>",
            tablets.len(),
            bytes(size),
            bytes(mem),
        );
        let _ = write!(
            details,
            "<h2 id=\"t-{name}\">{name}: tablets</h2><table class=\"tablets\"><tr><th>id</th><th class=\"l\">start row</th><th class=\"l\">end row</th><th>size</th><th>memtable</th><th class=\"l\">files per level</th><th>shared files</th></tr>"
        );
        for tb in tablets.iter().take(TABLETS_SHOWN_MAX) {
            let levels: Vec<String> = tb.files_per_level.iter().map(|n| n.to_string()).collect();
            let _ = write!(
                details,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                tb.id,
                if tb.start_row.is_empty() { "(start)".to_string() } else { row(&tb.start_row) },
                tb.end_row.as_deref().map_or("(end)".to_string(), row),
                bytes(tb.size_bytes),
                bytes(tb.memtable_bytes),
                levels.join(" "),
                tb.shared_files,
            );
        }
        details.push_str("</table>");
        if tablets.len() > TABLETS_SHOWN_MAX {
            let _ = write!(
                details,
                "<p>and {} more tablets</p>",
                tablets.len() - TABLETS_SHOWN_MAX
            );
        }
    }
    p.push_str("</table>");
    p.push_str(&details);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_bytes() {
        assert_eq!(
            esc("<a href='x'>&</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(row(b"r<1>\x00\\"), "r&lt;1&gt;\\x00\\x5c");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
    }
}
