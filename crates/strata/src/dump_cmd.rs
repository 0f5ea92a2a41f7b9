//! `strata dump FILE`: prints one of the engine's files in readable form
//! (`strata_engine::dump`): an SSTable, a commit-log segment or object,
//! or the manifest.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_engine::dump::{dump, DumpOptions, FileKind};
use strata_engine::storage::{MemStorage, Storage};
use strata_object_store::ObjectStorage;

/// What `strata dump` was asked.
#[derive(clap::Args)]
pub struct DumpArgs {
    /// The file: a path on disk (`DIR/000012.sst`, `DIR/000003.log`,
    /// `DIR/MANIFEST-000001`), or with --storage its name in the store
    /// (`000012.sst`, `wal/…`, `manifest/…`). Reading a local file takes
    /// no lock, so a running server's files can be dumped.
    pub file: String,
    /// Read FILE from this object store (as `strata serve --storage`).
    #[arg(long, value_name = "URL")]
    pub storage: Option<String>,
    /// Bytes of each value printed before it is cut.
    #[arg(long, default_value_t = 256)]
    pub value_bytes_max: usize,
}

pub fn run(args: DumpArgs) -> Result<()> {
    let opts = DumpOptions {
        value_bytes_max: args.value_bytes_max,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match &args.storage {
        Some(url) => {
            let parsed = strata_object_store::parse_storage_url(url)?;
            let storage = ObjectStorage::open(parsed, None, 0)?;
            dump(&*storage, &args.file, &opts, &mut out)
                .with_context(|| format!("dumping {} of {url}", args.file))?;
        }
        None => {
            // The one file, copied into memory: no lock on its directory.
            let path = PathBuf::from(&args.file);
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .with_context(|| format!("{} names no file", args.file))?
                .to_string();
            if FileKind::of(&name).is_none() {
                anyhow::bail!(
                    "{} is not a file of the engine (NNNNNN.sst, NNNNNN.log or MANIFEST-NNNNNN)",
                    args.file
                );
            }
            let data = std::fs::read(&path).with_context(|| format!("reading {}", args.file))?;
            let mem = MemStorage::new();
            let mut f = mem.create(&name)?;
            f.append(&data)?;
            f.sync()?;
            drop(f);
            dump(&*mem, &name, &opts, &mut out)
                .with_context(|| format!("dumping {}", args.file))?;
        }
    }
    std::io::Write::flush(&mut out).context("writing the dump")?;
    Ok(())
}
