//! `strata compact TABLE`: asks a running server
//! (StrataAdmin/CompactTable) for a major compaction of a table, waits for
//! it, and prints the table's size and files before and after.

use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use strata_server::pb::strata_admin_client::StrataAdminClient;
use strata_server::tablets::CompactTableRequest;

use crate::tablets_cmd::{block_on, connect, human_size, TableArgs};

pub fn run(args: TableArgs) -> Result<()> {
    let name = args.name();
    let started = Instant::now();
    eprintln!(
        "compacting {name} on {} (the server logs its progress)",
        args.server
    );
    let reply = block_on(async {
        let channel = connect(&args.server).await?;
        StrataAdminClient::new(channel)
            .compact_table(CompactTableRequest {
                table_name: name.clone(),
            })
            .await
            .map_err(|s| anyhow!("{:?}: {}", s.code(), s.message()))
            .with_context(|| format!("compacting {name} on {}", args.server))
    })??;
    let r = reply.into_inner();
    let files = |n: u32| {
        if n == 1 {
            "1 file".to_string()
        } else {
            format!("{n} files")
        }
    };
    println!(
        "{name}: {} in {} before, {} in {} after ({:.1?})",
        human_size(r.size_bytes_before),
        files(r.files_before),
        human_size(r.size_bytes_after),
        files(r.files_after),
        started.elapsed()
    );
    Ok(())
}
