//! The manifest: the file set of every tree, changed only by atomic,
//! durable version edits (docs/formats/manifest.md).

mod edit;
mod frame;
pub mod objects;
mod set;
mod stored;
mod version;

pub use edit::{NewFile, NewTablet, VersionEdit};
pub use set::{
    file_number_of, manifest_file_name, new_file_of, open_file, sort_levels, TabletFiles,
    VersionSet,
};
pub use stored::{read_stored, StoredState, StoredTablet};

/// The payloads (encoded version edits) of a manifest file's frames, each
/// checksum verified (docs/formats/manifest.md, "Framing").
pub fn decode_frames<'a>(buf: &'a [u8], file: &str) -> crate::Result<Vec<&'a [u8]>> {
    frame::decode_all(buf, file)
}
pub use version::{table_file_name, BloomStats, FileMeta, LevelIterator, Version, NUM_LEVELS};
