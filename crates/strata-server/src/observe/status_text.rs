//! The status as plain text, for `strata status` in a terminal: the same
//! facts as the status page, sections of aligned lines.

use std::fmt::Write;

use super::status::{ClusterStatus, Status};
use super::status_page::{bytes, duration, engine_rows, utc_clock};

/// `st` as text; with `tablets`, every listed tablet too.
pub fn render_text(st: &Status, tablets: bool) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "Strata {}: {}", st.version, st.state);
    let _ = writeln!(o, "  uptime   {}", duration(st.uptime_secs));
    let _ = writeln!(o, "  storage  {}", st.storage);
    if let Some(e) = &st.engine {
        let _ = writeln!(o, "\nEngine");
        for (k, v) in engine_rows(e) {
            let _ = writeln!(o, "  {k:<27} {v}");
        }
        let _ = writeln!(o, "\nFlushes and compactions running: {}", st.jobs.len());
        for j in &st.jobs {
            let _ = writeln!(
                o,
                "  {:<22} {} tablet {}: {} input, {} keys written, {:.1} s",
                j.kind,
                j.table,
                j.tablet,
                bytes(j.input_bytes),
                j.keys_done,
                j.running_millis as f64 / 1000.0
            );
        }
    }
    if let Some(c) = &st.cluster {
        cluster(&mut o, c, tablets);
    }
    let threshold = st
        .slow_request_threshold_ms
        .map_or("log off".to_string(), |ms| format!(">= {ms} ms"));
    let _ = writeln!(
        o,
        "\nRecent slow requests ({threshold}): {}",
        st.slow_requests.len()
    );
    for r in st.slow_requests.iter().rev() {
        let _ = writeln!(
            o,
            "  {:>10.1} ms  {} {}  table {}  rows {}  (ended {})",
            r.micros as f64 / 1000.0,
            r.rpc,
            r.code,
            r.table.as_deref().unwrap_or("-"),
            r.rows.map_or("-".to_string(), |n| n.to_string()),
            utc_clock(r.at_unix_secs)
        );
    }
    let _ = writeln!(o, "\nRPCs");
    if st.rpcs.is_empty() {
        let _ = writeln!(
            o,
            "  (none counted: the server counts requests only with its HTTP listener on)"
        );
    }
    for m in &st.rpcs {
        let errors: Vec<String> = m.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = writeln!(
            o,
            "  {:<58} started {:>9}  OK {:>9}  {}",
            m.rpc,
            m.started,
            m.ok,
            errors.join(", ")
        );
    }
    if st.engine.is_some() && st.cluster.is_none() {
        let _ = writeln!(o, "\nTables: {}", st.tables.len());
        for t in &st.tables {
            let _ = writeln!(
                o,
                "  {:<30} {:>5} tablets  {:>10}  memtable {:>10}  rows read {}  written {}",
                t.name,
                t.tablet_count,
                bytes(t.size_bytes),
                bytes(t.memtable_bytes),
                t.rows_read,
                t.rows_written
            );
            if !tablets {
                continue;
            }
            for tb in &t.tablets {
                let levels: Vec<String> =
                    tb.files_per_level.iter().map(|n| n.to_string()).collect();
                let _ = writeln!(
                    o,
                    "    tablet {:>5}  [{}, {})  {:>10}  memtable {:>10}  files per level {}",
                    tb.id,
                    start(&tb.start_row),
                    tb.end_row.as_deref().unwrap_or("(end)"),
                    bytes(tb.size_bytes),
                    bytes(tb.memtable_bytes),
                    levels.join(" ")
                );
            }
            if tablets && t.tablet_count > t.tablets.len() {
                let _ = writeln!(o, "    and {} more", t.tablet_count - t.tablets.len());
            }
        }
    }
    o
}

fn start(r: &str) -> &str {
    if r.is_empty() {
        "(start)"
    } else {
        r
    }
}

fn cluster(o: &mut String, c: &ClusterStatus, tablets: bool) {
    let _ = writeln!(
        o,
        "\nCluster (this server: {}{}; master: {}{})",
        c.me.as_deref().unwrap_or("no lease"),
        if c.is_master { ", the master" } else { "" },
        c.master.as_deref().unwrap_or("none known"),
        c.master_term
            .map_or(String::new(), |t| format!(", term {t}"))
    );
    if let Some(changes) = c.master_changes_text() {
        let _ = writeln!(o, "  as master, this server made: {changes}");
    }
    for s in &c.servers {
        let _ = writeln!(
            o,
            "  server {:<30} {:<24} {} tablets",
            s.owner, s.address, s.tablets
        );
    }
    for t in &c.tables {
        let _ = writeln!(o, "  table {}: {} tablets", t.name, t.tablet_count);
        if !tablets {
            continue;
        }
        for tb in &t.tablets {
            let _ = writeln!(
                o,
                "    tablet {:>5}  [{}, {})  {}  {}  epoch {}",
                tb.id,
                start(&tb.start_row),
                tb.end_row.as_deref().unwrap_or("(end)"),
                tb.state,
                tb.owner.as_deref().unwrap_or("-"),
                tb.epoch
            );
        }
    }
}
