//! Readable dumps of the engine's files (`strata dump`), as LevelDB's
//! `leveldbutil dump` and HBase's `hfile` tool: an SSTable (properties,
//! index, every entry), a commit-log segment or log object (every record
//! and its operations), or the manifest (every version edit), in the
//! formats of docs/formats/. Every checksum is verified on the way: a
//! damaged file dumps up to the damage and then fails with
//! `Error::Corruption`.
//!
//! Output is one item per line. Keys and values are printed as bytes:
//! printable ASCII as it is, a backslash as `\\`, anything else as
//! `\xNN`; values past `value_bytes_max` are cut, with their length.

use std::io::Write;

use crate::batch::iter_payload;
use crate::error::{Error, Result};
use crate::iter::InternalIterator;
use crate::key::{parse_internal_key, ValueKind};
use crate::log::format::decode_frame;
use crate::log::{objects as log_objects, parse_segment_file_name};
use crate::manifest::{objects as manifest_objects, VersionEdit};
use crate::sst::Table;
use crate::storage::{read_file, Storage};

/// The kinds of file `dump` reads, told by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Table,
    LogSegment,
    LogObject,
    Manifest,
    ManifestObject,
}

impl FileKind {
    /// The kind of the file named `name`, if it is one of the engine's.
    pub fn of(name: &str) -> Option<FileKind> {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.ends_with(".sst") {
            Some(FileKind::Table)
        } else if parse_segment_file_name(name).is_some() {
            Some(FileKind::LogSegment)
        } else if log_objects::parse_object_name(name).is_some() {
            Some(FileKind::LogObject)
        } else if manifest_objects::parse_object_name(name).is_some() {
            Some(FileKind::ManifestObject)
        } else if base.starts_with("MANIFEST-") {
            Some(FileKind::Manifest)
        } else {
            None
        }
    }
}

/// How much `dump` prints.
#[derive(Clone, Copy, Debug)]
pub struct DumpOptions {
    /// Bytes of a value printed before it is cut.
    pub value_bytes_max: usize,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            value_bytes_max: 256,
        }
    }
}

/// `bytes` as text (module docs).
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

fn value(v: &[u8], opts: &DumpOptions) -> String {
    if v.len() <= opts.value_bytes_max {
        escape(v)
    } else {
        format!(
            "{}… ({} bytes)",
            escape(&v[..opts.value_bytes_max]),
            v.len()
        )
    }
}

fn kind_name(k: ValueKind) -> &'static str {
    match k {
        ValueKind::Put => "put",
        ValueKind::Delete => "delete",
        ValueKind::Merge => "merge",
    }
}

/// Writes the dump of file `name` of `storage` to `out`.
pub fn dump(
    storage: &dyn Storage,
    name: &str,
    opts: &DumpOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let kind = FileKind::of(name).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{name} is not a file of the engine (NNNNNN.sst, NNNNNN.log, MANIFEST-NNNNNN, or a log or manifest object)"
        ))
    })?;
    let w = |e: std::io::Error| Error::io("writing the dump", e);
    match kind {
        FileKind::Table => dump_table(storage, name, opts, out).map_err(|e| match e {
            DumpError::Engine(e) => e,
            DumpError::Write(e) => w(e),
        }),
        FileKind::LogSegment => {
            let data = read_file(storage, name)?;
            dump_records(&data, 0, name, opts, out)
        }
        FileKind::LogObject => {
            let data = read_file(storage, name)?;
            let id = log_objects::parse_object_name(name).unwrap_or(0);
            let epoch = log_objects::decode_header(&data, name, id)?;
            writeln!(out, "log object {name}: id {id}, epoch {epoch}").map_err(w)?;
            dump_records(&data, log_objects::HEADER_BYTES, name, opts, out)
        }
        FileKind::Manifest => {
            let data = read_file(storage, name)?;
            writeln!(out, "manifest {name}: {} bytes", data.len()).map_err(w)?;
            for (i, payload) in crate::manifest::decode_frames(&data, name)?
                .iter()
                .enumerate()
            {
                let edit = VersionEdit::decode(payload, name)?;
                writeln!(out, "edit {i}:").map_err(w)?;
                write_edit(&edit, out).map_err(w)?;
            }
            Ok(())
        }
        FileKind::ManifestObject => {
            let data = read_file(storage, name)?;
            let obj = manifest_objects::decode(&data, name)?;
            let edit = VersionEdit::decode(obj.payload, name)?;
            writeln!(
                out,
                "manifest object {name}: {:?}, epoch {}",
                obj.kind, obj.epoch
            )
            .map_err(w)?;
            writeln!(out, "edit:").map_err(w)?;
            write_edit(&edit, out).map_err(w)
        }
    }
}

/// An internal key as `"user key" @seq kind`.
fn internal_key(k: &[u8]) -> String {
    match crate::key::parse_internal_key(k) {
        Some(p) => format!(
            "\"{}\" @{} {}",
            escape(p.user_key),
            p.seq,
            kind_name(p.kind)
        ),
        None => format!("(malformed key \"{}\")", escape(k)),
    }
}

/// A version edit, one change per line.
fn write_edit(e: &VersionEdit, out: &mut dyn Write) -> std::io::Result<()> {
    if *e == VersionEdit::default() {
        return writeln!(out, "  (no change)");
    }
    if let Some(n) = e.next_file_number {
        writeln!(out, "  next file number {n}")?;
    }
    if let Some(s) = e.last_seq {
        writeln!(out, "  last seq {s}")?;
    }
    for (id, name) in &e.created_trees {
        writeln!(out, "  create tree {id} \"{}\"", escape(name.as_bytes()))?;
    }
    for id in &e.dropped_trees {
        writeln!(out, "  drop tree {id}")?;
    }
    for t in &e.created_tablets {
        writeln!(
            out,
            "  create tablet {} of tree {}: [\"{}\", {}){}",
            t.id,
            t.tree,
            escape(&t.lo),
            t.hi.as_deref()
                .map_or("end".to_string(), |h| format!("\"{}\"", escape(h))),
            if t.pinned_lo { ", pinned" } else { "" }
        )?;
    }
    for id in &e.dropped_tablets {
        writeln!(out, "  drop tablet {id}")?;
    }
    for f in &e.added_files {
        writeln!(
            out,
            "  add {} to tablet {} L{}: {} bytes, keys {} .. {}, seqs {}..{}",
            crate::manifest::table_file_name(f.number),
            f.tree,
            f.level,
            f.size_bytes,
            internal_key(&f.smallest),
            internal_key(&f.largest),
            f.seq_min,
            f.seq_max
        )?;
    }
    for (tree, level, number) in &e.removed_files {
        writeln!(
            out,
            "  remove {} from tablet {tree} L{level}",
            crate::manifest::table_file_name(*number)
        )?;
    }
    for (tree, seq) in &e.flushed_seqs {
        writeln!(out, "  tablet {tree} flushed through seq {seq}")?;
    }
    Ok(())
}

/// The two ways a table dump fails.
enum DumpError {
    Engine(Error),
    Write(std::io::Error),
}

impl From<Error> for DumpError {
    fn from(e: Error) -> Self {
        DumpError::Engine(e)
    }
}

impl From<std::io::Error> for DumpError {
    fn from(e: std::io::Error) -> Self {
        DumpError::Write(e)
    }
}

fn dump_table(
    storage: &dyn Storage,
    name: &str,
    opts: &DumpOptions,
    out: &mut dyn Write,
) -> std::result::Result<(), DumpError> {
    let number = name
        .rsplit('/')
        .next()
        .and_then(|b| b.strip_suffix(".sst"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let file = storage.open(name)?;
    let len = file.len();
    let table = Table::open(file, number, name.to_string(), None)?;
    table.verify_checksums()?;
    let p = table.properties();
    writeln!(out, "table {name}: {len} bytes")?;
    writeln!(out, "properties:")?;
    let props: [(&str, String); 13] = [
        ("entries", p.entries.to_string()),
        ("deletions", p.deletions.to_string()),
        ("merges", p.merges.to_string()),
        ("smallest key", ikey(&p.smallest_key)),
        ("largest key", ikey(&p.largest_key)),
        ("smallest seq", p.smallest_seq.to_string()),
        ("largest seq", p.largest_seq.to_string()),
        ("raw key bytes", p.raw_key_bytes.to_string()),
        ("raw value bytes", p.raw_value_bytes.to_string()),
        ("data blocks", p.data_blocks.to_string()),
        ("data bytes", p.data_bytes.to_string()),
        ("index bytes", p.index_bytes.to_string()),
        ("filter bytes", p.filter_bytes.to_string()),
    ];
    for (k, v) in props {
        writeln!(out, "  {k}: {v}")?;
    }
    let index = table.index_entries();
    writeln!(out, "index: {} data blocks", index.len())?;
    for (i, (key, offset)) in index.iter().enumerate() {
        writeln!(out, "  block {i} at byte {offset}: up to {}", ikey(key))?;
    }
    writeln!(out, "entries:")?;
    let mut it = table.iter(false);
    it.seek_to_first()?;
    while it.valid() {
        writeln!(out, "  {} => {}", ikey(it.key()), value(it.value(), opts))?;
        it.next()?;
    }
    Ok(())
}

/// An internal key as `user key @seq kind`.
fn ikey(k: &[u8]) -> String {
    match parse_internal_key(k) {
        Some(p) => format!("{} @{} {}", escape(p.user_key), p.seq, kind_name(p.kind)),
        None => format!("(bad internal key {})", escape(k)),
    }
}

fn dump_records(
    data: &[u8],
    start: usize,
    name: &str,
    opts: &DumpOptions,
    out: &mut dyn Write,
) -> Result<()> {
    let w = |e: std::io::Error| Error::io("writing the dump", e);
    let mut offset = start;
    let mut records = 0u64;
    while offset < data.len() {
        if data[offset..].iter().all(|&b| b == 0) {
            writeln!(
                out,
                "{} zero bytes from byte {offset}: not yet written",
                data.len() - offset
            )
            .map_err(w)?;
            break;
        }
        let frame = decode_frame(data, offset).map_err(|why| {
            Error::corruption(name, format!("damaged record at byte {offset}: {why}"))
        })?;
        writeln!(
            out,
            "record at byte {offset}: seq {} ({} payload bytes, synced through byte {})",
            frame.seq_first,
            frame.payload.len(),
            frame.synced_watermark
        )
        .map_err(w)?;
        for (i, op) in iter_payload(frame.payload, name)?.enumerate() {
            writeln!(
                out,
                "  @{} {} tree {} {} => {}",
                frame.seq_first + i as u64,
                kind_name(op.kind),
                op.tree,
                escape(op.key),
                value(op.value, opts)
            )
            .map_err(w)?;
        }
        records += 1;
        offset = frame.end();
    }
    writeln!(out, "{records} records").map_err(w)
}
