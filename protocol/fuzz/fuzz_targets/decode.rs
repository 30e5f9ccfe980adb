//! Feeds arbitrary bytes to every decoder a node runs on peer input: wire messages, gossip
//! payloads, entries (decode, then signature check; a sealed body is also opened with a
//! fixed key in every slot's name, as a recipient would) and charters (decode, then
//! verify). Any panic is a bug. Run: `cargo fuzz run decode` from `protocol/`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use threatmesh_protocol::charter::SignedCharter;
use threatmesh_protocol::entry::{Body, EntryHeader, UnverifiedEntry};
use threatmesh_protocol::seal::{EncryptionSecret, SealContext};
use threatmesh_protocol::wire::{self, MAX_MESSAGE_BYTES, Message};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(Message::Charter(raw)) = wire::decode(bytes, MAX_MESSAGE_BYTES) {
        if let Ok(charter) = SignedCharter::decode(raw) {
            let _ = charter.verify_genesis(charter.id());
            let _ = charter.verify_successor(&charter);
        }
    }
    let _ = wire::decode_gossip(bytes);
    let _ = EntryHeader::peek(bytes);
    if let Ok(entry) = UnverifiedEntry::decode(bytes.to_vec()) {
        if let Body::Sealed(sealed) = &entry.entry().body {
            let secret = EncryptionSecret::from_bytes([1; 32]);
            let context = SealContext::of(entry.entry());
            for org in sealed.orgs() {
                let _ = sealed.open(&context, &org, &secret);
            }
        }
        let _ = entry.verify();
    }
});
