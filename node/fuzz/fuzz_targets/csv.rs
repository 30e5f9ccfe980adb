//! cargo-fuzz target `csv`: see `targets.rs` for what it checks. Run from `node/`:
//! `cargo fuzz run --sanitizer none csv` (or `scripts/fuzz` for every target).

#![no_main]

#[allow(dead_code)] // each target uses part of the shared bodies
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| targets::csv(bytes));
