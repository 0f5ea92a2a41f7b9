//! Point lookups: memtables newest first, then the files.

use super::TabletState;
use crate::error::{Error, Result};
use crate::key::{lookup_key, SeqNo};
use crate::memtable::Lookup;
use crate::merge::fold_newest_first;

pub(crate) fn get(
    t: &TabletState,
    key: &[u8],
    seq: SeqNo,
    bloom: &crate::manifest::BloomStats,
) -> Result<Option<Vec<u8>>> {
    let sv = t.super_version();
    let lookup = lookup_key(key, seq);
    let mut operands = Vec::new();
    let mut found = sv.mem.get(&lookup, &mut operands);
    for imm in sv.imms.iter().rev() {
        if found != Lookup::Continue {
            break;
        }
        found = imm.get(&lookup, &mut operands);
    }
    if found == Lookup::Continue {
        found = sv.version.get(&lookup, &mut operands, bloom)?;
    }
    let base = match found {
        Lookup::Found(v) if operands.is_empty() => return Ok(Some(v)),
        Lookup::Found(v) => Some(v),
        Lookup::Deleted | Lookup::Continue if operands.is_empty() => return Ok(None),
        Lookup::Deleted | Lookup::Continue => None,
    };
    let opts = t.options();
    let op = opts
        .merge_operator
        .as_deref()
        .ok_or_else(|| no_merge_operator(&t.name))?;
    Ok(Some(fold_newest_first(op, key, base.as_deref(), &operands)))
}

pub(crate) fn no_merge_operator(tree: &str) -> Error {
    Error::InvalidArgument(format!(
        "tree {tree} holds merge operands but has no merge operator"
    ))
}
