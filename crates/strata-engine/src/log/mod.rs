//! The commit log shared by every tree (docs/formats/commit-log.md).
