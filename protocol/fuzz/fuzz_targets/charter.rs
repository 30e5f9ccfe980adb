//! cargo-fuzz target `charter`: see `targets.rs` for what it checks. Run from `protocol/`:
//! `cargo fuzz run --sanitizer none charter` (or `scripts/fuzz` for every target).

#![no_main]

#[allow(dead_code)] // each target uses part of the shared bodies
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| targets::charter(bytes));
