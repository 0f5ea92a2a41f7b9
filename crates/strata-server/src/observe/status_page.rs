//! The status page at `/`: one server-rendered HTML page, no scripts and
//! no external assets, with what an operator looks at first: the server,
//! its memory and commit log, the flushes and compactions running, recent
//! slow requests, the RPCs served, every table with its tablets and, on a
//! cluster server, the cluster's servers and tablets. Rendered from a
//! [`Status`], as `/status.json` and `strata status` are.

use std::fmt::Write;

use super::status::{ClusterStatus, EngineStatus, Status};

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

/// Bytes in binary units (KiB, MiB, ...).
pub fn bytes(n: u64) -> String {
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

/// A time of day in UTC (`HH:MM:SS UTC`) of seconds since the Unix epoch.
pub fn utc_clock(unix_secs: u64) -> String {
    let s = unix_secs % 86400;
    format!("{:02}:{:02}:{:02} UTC", s / 3600, s / 60 % 60, s % 60)
}

/// Seconds as days, hours, minutes and seconds.
pub fn duration(s: u64) -> String {
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

/// The page of `st`.
pub(crate) fn render(st: &Status) -> String {
    let mut p = String::new();
    let phase = match st.state.as_str() {
        "starting" => "starting (opening the database)",
        other => other,
    };
    let _ = write!(
        p,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Strata {v}</title><style>{STYLE}</style></head><body>\
         <h1>Strata {v}</h1><table id=\"server\">\
         <tr><th class=\"l\">state</th><td class=\"l\" id=\"phase\">{phase}</td></tr>\
         <tr><th class=\"l\">uptime</th><td class=\"l\">{up}</td></tr>\
         <tr><th class=\"l\">storage</th><td class=\"l\">{storage}</td></tr></table>",
        v = esc(&st.version),
        phase = esc(phase),
        up = duration(st.uptime_secs),
        storage = esc(&st.storage),
    );
    if let Some(e) = &st.engine {
        engine_section(&mut p, e);
        jobs_section(&mut p, st);
    }
    if let Some(c) = &st.cluster {
        cluster_section(&mut p, c);
    }
    if st.state == "serving" || !st.rpcs.is_empty() {
        slow_section(&mut p, st);
        rpc_section(&mut p, st);
    }
    if st.engine.is_some() && st.cluster.is_none() {
        tables_section(&mut p, st);
    } else if st.cluster.is_none() {
        p.push_str("<p>The database is not open.</p>");
    }
    p.push_str(
        "<p><a href=\"/metrics\">metrics</a> · <a href=\"/status.json\">status.json</a></p></body></html>\n",
    );
    p
}

/// Engine rows: what and its value.
pub fn engine_rows(e: &EngineStatus) -> Vec<(&'static str, String)> {
    let lookups = e.block_cache_hits + e.block_cache_misses;
    let hit_rate = if lookups == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", e.block_cache_hits as f64 * 100.0 / lookups as f64)
    };
    let per = |n: u64, d: u64, unit: &str| {
        if d == 0 {
            "-".to_string()
        } else {
            format!("{:.1}{unit}", n as f64 / d as f64)
        }
    };
    let secs = |micros: u64| format!("{:.1} s", micros as f64 / 1e6);
    vec![
        (
            "memtables",
            format!(
                "{} active, {} sealed, of {} budget",
                bytes(e.memtable_active_bytes),
                bytes(e.memtable_sealed_bytes),
                bytes(e.memtable_budget_bytes)
            ),
        ),
        (
            "write stalls",
            format!("{}, {} waited", e.write_stalls, secs(e.write_stall_micros)),
        ),
        (
            "block cache",
            format!(
                "{} of {}, hit rate {hit_rate}",
                bytes(e.block_cache_usage_bytes),
                bytes(e.block_cache_capacity_bytes)
            ),
        ),
        (
            "commit log",
            format!(
                "{} segments, {} kept, {} written",
                e.log_segments,
                bytes(e.log_bytes_retained),
                bytes(e.log_bytes_written)
            ),
        ),
        (
            "group commits",
            format!(
                "{} groups, {} batches per group",
                e.commit_groups,
                per(e.commit_batches, e.commit_groups, "")
            ),
        ),
        (
            "log time per durable group",
            format!(
                "mean {}, p99 under {}",
                per(e.commit_log_micros, e.commit_durable_groups, " µs"),
                e.commit_log_p99_micros_bound
                    .map_or("-".to_string(), |b| format!("{b:.0} µs"))
            ),
        ),
        (
            "flushes",
            format!(
                "{}, {} written in {}",
                e.flushes,
                bytes(e.flush_bytes_written),
                secs(e.flush_micros)
            ),
        ),
        (
            "compactions",
            format!(
                "{}, {} read, {} written in {}",
                e.compactions,
                bytes(e.compaction_bytes_read),
                bytes(e.compaction_bytes_written),
                secs(e.compaction_micros)
            ),
        ),
        ("user bytes written", bytes(e.user_bytes_written)),
        ("storage bytes written", bytes(e.storage_bytes_written)),
        (
            "write amplification",
            format!("{:.2}", e.write_amplification),
        ),
    ]
}

fn engine_section(p: &mut String, e: &EngineStatus) {
    p.push_str("<h2>Engine</h2><table id=\"engine\">");
    for (k, v) in engine_rows(e) {
        let _ = write!(
            p,
            "<tr><th class=\"l\">{k}</th><td class=\"l\">{}</td></tr>",
            esc(&v)
        );
    }
    p.push_str("</table>");
}

fn jobs_section(p: &mut String, st: &Status) {
    let _ = write!(
        p,
        "<h2>Flushes and compactions running ({})</h2>",
        st.jobs.len()
    );
    if st.jobs.is_empty() {
        return;
    }
    p.push_str("<table id=\"jobs\"><tr><th class=\"l\">job</th><th class=\"l\">table</th><th>tablet</th><th>input</th><th>keys written</th><th>running</th></tr>");
    for j in &st.jobs {
        let _ = write!(
            p,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td></tr>",
            esc(&j.kind),
            esc(&j.table),
            j.tablet,
            bytes(j.input_bytes),
            j.keys_done,
            j.running_millis as f64 / 1000.0,
        );
    }
    p.push_str("</table>");
}

fn slow_section(p: &mut String, st: &Status) {
    let threshold = st
        .slow_request_threshold_ms
        .map_or("the slow-request log is off".to_string(), |ms| {
            format!("{ms} ms or longer")
        });
    let _ = write!(
        p,
        "<h2>Recent slow requests ({})</h2><p>{}</p>",
        st.slow_requests.len(),
        esc(&threshold)
    );
    if st.slow_requests.is_empty() {
        return;
    }
    p.push_str("<table id=\"slow\"><tr><th>ended</th><th class=\"l\">RPC</th><th class=\"l\">code</th><th class=\"l\">table</th><th>rows</th><th>time</th></tr>");
    for r in st.slow_requests.iter().rev() {
        let _ = write!(
            p,
            "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{:.1} ms</td></tr>",
            utc_clock(r.at_unix_secs),
            esc(&r.rpc),
            esc(&r.code),
            esc(r.table.as_deref().unwrap_or("-")),
            r.rows.map_or("-".to_string(), |n| n.to_string()),
            r.micros as f64 / 1000.0,
        );
    }
    p.push_str("</table>");
}

fn rpc_section(p: &mut String, st: &Status) {
    p.push_str("<h2>RPCs</h2><table id=\"rpcs\"><tr><th class=\"l\">RPC</th><th>started</th><th>OK</th><th class=\"l\">errors</th></tr>");
    for m in &st.rpcs {
        let errors: Vec<String> = m.errors.iter().map(|(c, n)| format!("{c} {n}")).collect();
        let _ = write!(
            p,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td></tr>",
            esc(&m.rpc),
            m.started,
            m.ok,
            esc(&errors.join(", ")),
        );
    }
    p.push_str("</table>");
}

fn tables_section(p: &mut String, st: &Status) {
    let _ = write!(p, "<h2>Tables ({})</h2>", st.tables.len());
    p.push_str("<table id=\"tables\"><tr><th class=\"l\">table</th><th>tablets</th><th>size</th><th>memtable</th><th>rows read</th><th>rows written</th></tr>");
    let mut details = String::new();
    for t in &st.tables {
        let name = esc(&t.name);
        let _ = write!(
            p,
            "<tr><td class=\"l\"><a href=\"#t-{name}\">{name}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            t.tablet_count,
            bytes(t.size_bytes),
            bytes(t.memtable_bytes),
            t.rows_read,
            t.rows_written,
        );
        let _ = write!(
            details,
            "<h2 id=\"t-{name}\">{name}: tablets</h2><table class=\"tablets\"><tr><th>id</th><th class=\"l\">start row</th><th class=\"l\">end row</th><th>size</th><th>memtable</th><th class=\"l\">files per level</th><th>shared files</th></tr>"
        );
        for tb in &t.tablets {
            let levels: Vec<String> = tb.files_per_level.iter().map(|n| n.to_string()).collect();
            let _ = write!(
                details,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                tb.id,
                start_row(&tb.start_row),
                end_row(tb.end_row.as_deref()),
                bytes(tb.size_bytes),
                bytes(tb.memtable_bytes),
                levels.join(" "),
                tb.shared_files,
            );
        }
        details.push_str("</table>");
        if t.tablet_count > t.tablets.len() {
            let _ = write!(
                details,
                "<p>and {} more tablets</p>",
                t.tablet_count - t.tablets.len()
            );
        }
    }
    p.push_str("</table>");
    p.push_str(&details);
}

fn start_row(r: &str) -> String {
    if r.is_empty() {
        "(start)".to_string()
    } else {
        esc(r)
    }
}

fn end_row(r: Option<&str>) -> String {
    r.map_or("(end)".to_string(), esc)
}

fn cluster_section(p: &mut String, c: &ClusterStatus) {
    let _ = write!(
        p,
        "<h2>Cluster</h2><p>This server: <span id=\"me\">{}</span>{}. Master: <span id=\"master\">{}</span>{}</p>",
        esc(c.me.as_deref().unwrap_or("(no lease)")),
        if c.is_master { " (the master)" } else { "" },
        esc(c.master.as_deref().unwrap_or("(none known)")),
        c.master_term
            .map_or(String::new(), |t| format!(", term {t}"))
    );
    if let Some(changes) = c.master_changes_text() {
        let _ = write!(
            p,
            "<p id=\"master-changes\">As master, this server made: {}</p>",
            esc(&changes)
        );
    }
    p.push_str("<table id=\"servers\"><tr><th class=\"l\">server</th><th class=\"l\">address</th><th>tablets</th></tr>");
    for s in &c.servers {
        let _ = write!(
            p,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(&s.owner),
            esc(&s.address),
            s.tablets
        );
    }
    p.push_str("</table>");
    for t in &c.tables {
        let name = esc(&t.name);
        let _ = write!(
            p,
            "<h2 id=\"t-{name}\">{name}: tablets ({})</h2><table class=\"tablets\"><tr><th>id</th><th class=\"l\">start row</th><th class=\"l\">end row</th><th class=\"l\">state</th><th class=\"l\">owner</th><th>epoch</th></tr>",
            t.tablet_count
        );
        for tb in &t.tablets {
            let _ = write!(
                p,
                "<tr><td>{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td><td>{}</td></tr>",
                tb.id,
                start_row(&tb.start_row),
                end_row(tb.end_row.as_deref()),
                esc(&tb.state),
                esc(tb.owner.as_deref().unwrap_or("-")),
                tb.epoch,
            );
        }
        p.push_str("</table>");
    }
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
        assert_eq!(
            esc(&super::super::status::row_text(b"r<1>\x00\\")),
            "r&lt;1&gt;\\x00\\x5c"
        );
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 << 20), "3.0 MiB");
        assert_eq!(
            utc_clock(86400 * 3 + 3600 * 13 + 60 * 5 + 9),
            "13:05:09 UTC"
        );
        assert_eq!(duration(86400 + 61), "1d 00h 01m 01s");
    }
}
