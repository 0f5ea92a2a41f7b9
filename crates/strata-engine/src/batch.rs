//! Write batches: atomic groups of operations on one or more trees.
