//! Deterministic fuzz inputs for the smoke tests that run every fuzz target's body under
//! plain `cargo test` (stable Rust, no cargo-fuzz): random byte strings and mutations of
//! seed inputs (valid messages, fixture files), from a fixed seed so a failure reproduces.
//! Included by path from `protocol/tests/fuzz_smoke.rs` and `node/tests/fuzz_smoke.rs`.

/// splitmix64: tiny, fast, and good enough to pick mutations.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Bytes that often sit on a decoder's edge: bincode's varint markers, JSON and CSV
/// punctuation, zero, all ones.
const INTERESTING: &[u8] = b"\x00\x01\x7f\x80\xfb\xfc\xfd\xfe\xff\"\\{}[]:,;\t\r\n0-9eE.%";

/// One to four stacked mutations of `input`; `other` is another seed to splice from.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut bytes = input.to_vec();
    for _ in 0..=rng.below(4) {
        let len = bytes.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                bytes[at] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let count = 1 + rng.below(16);
                let insert: Vec<u8> = (0..count).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, insert);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                bytes.drain(start..end);
            }
            4 => bytes.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                // Repeat a slice: long lists, deep nesting, repeated keys.
                let start = rng.below(len);
                let end = (start + 1 + rng.below(64)).min(len);
                let copy = bytes[start..end].to_vec();
                let at = rng.below(len + 1);
                for _ in 0..1 + rng.below(8) {
                    bytes.splice(at..at, copy.iter().copied());
                }
            }
            6 if !other.is_empty() => {
                let at = rng.below(len + 1);
                let from = rng.below(other.len());
                let end = (from + 1 + rng.below(256)).min(other.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..end]);
            }
            _ if len > 0 => {
                // A varint-sized overwrite: a length or count claims something huge.
                let at = rng.below(len);
                let huge = rng.next().to_le_bytes();
                let end = (at + 1 + rng.below(8)).min(len);
                let width = end - at;
                bytes[at..end].copy_from_slice(&huge[..width]);
            }
            _ => bytes.push(rng.next() as u8),
        }
    }
    bytes
}

/// Runs `target` on `count` inputs from `seed`: every seed input as is, then a quarter
/// random byte strings (up to 512 bytes) and the rest mutations of the seeds. A panic is
/// re-raised with the input in hex, to be kept as a regression test.
pub fn run(seeds: &[Vec<u8>], count: usize, seed: u64, target: impl Fn(&[u8])) {
    assert!(!seeds.is_empty(), "a smoke run needs seed inputs");
    let mut rng = Rng::new(seed);
    let check = |input: &[u8]| {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(input)));
        if let Err(panic) = outcome {
            let hex: String = input.iter().map(|byte| format!("{byte:02x}")).collect();
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_default();
            panic!("fuzz target failed ({message}) on input {hex}");
        }
    };
    for input in seeds {
        check(input);
    }
    for round in 0..count {
        let input = if round % 4 == 0 {
            let len = rng.below(513);
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let input = &seeds[rng.below(seeds.len())];
            let other = &seeds[rng.below(seeds.len())];
            mutate(&mut rng, input, other)
        };
        check(&input);
    }
}
