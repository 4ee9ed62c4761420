//! The policy files shipped in this folder; see `tests/` for what is checked.
#![deny(missing_docs)]

/// Directory holding `default.toml`, `strict.toml` and `examples/`.
pub const RULES_DIR: &str = env!("CARGO_MANIFEST_DIR");
