//! cargo-fuzz target `signed_entry`: see `targets.rs` for what it checks. Run from `protocol/`:
//! `cargo fuzz run --sanitizer none signed_entry` (or `scripts/fuzz` for every target).

#![no_main]

#[allow(dead_code)] // each target uses part of the shared bodies
#[path = "../targets.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|bytes: &[u8]| targets::signed_entry(bytes));
