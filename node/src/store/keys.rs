//! The key layout: one sled tree, one leading byte per namespace.
//!
//! Keeping everything in one tree lets a single `apply_batch` write an entry and all its
//! index keys atomically. Integers are big-endian so keys sort numerically.
//!
//! | prefix | key | value |
//! | --- | --- | --- |
//! | `m` | name | meta: schema version, counters |
//! | `e` | entry id | the entry's gossip payload |
//! | `f` | author, seq | entry id (the first entry seen at that slot) |
//! | `x` | author, seq, entry id | empty: a second entry at a taken slot (equivocation evidence) |
//! | `h` | author | the feed's state, including its local number and organisation |
//! | `n` | local feed number | author |
//! | `v` | kind code, packed value, entry number, item (u16) | empty (the item's details are the entry's first shared ones), or which shared details, or its own |
//! | `r` | entry number | the entry's index record: feed number, seq, id, created, TLP, the details its items share |
//! | `i` | kind, value, 0, feed number, seq, item | schema 1's index record, read only while migrating |
//! | `a` | added time, counter | entry id, in the order this node accepted entries |
//! | `c` | version, charter id | a charter's gossip payload (rivals of a version side by side) |
//! | `o` | entry id | the bundle this node read from a sealed entry (recipients only) |
//! | `u` | entry id | the entry's `a` row key: a sealed entry for this organisation that did not open yet |
//!
//! Sealed entries added the `o` namespace and the `msealed` counter. A store written
//! before them holds no sealed entry, so it reads the same: the schema version stays 1.
//! The `u` namespace and the `munread` counter came later still: a store written before
//! them has no entry waiting to be opened again, which is how it reads.
//! Opened bundles are kept in the clear, like every clear entry; encrypting the store at
//! rest is left to the disk. Charter keys once held the version alone (one charter a
//! version); such keys sort before the longer ones of their version and read the same, so
//! the schema version stays 1 for them too.

use threatmesh_protocol::{Hash, Kind, PublicKey, Timestamp, Value};

pub(super) const ENTRY: u8 = b'e';
pub(super) const FEED: u8 = b'f';
pub(super) const CONFLICT: u8 = b'x';
pub(super) const HEAD: u8 = b'h';
pub(super) const NUMBER: u8 = b'n';
/// Schema 1's index, read only by the migration.
pub(super) const V1_INDEX: u8 = b'i';
pub(super) const INDEX: u8 = b'v';
pub(super) const ENTRY_RECORD: u8 = b'r';
pub(super) const ADDED: u8 = b'a';
pub(super) const CHARTER: u8 = b'c';
pub(super) const OPENED: u8 = b'o';
pub(super) const UNREAD: u8 = b'u';

// Meta keys start with `m`.
pub(super) const SCHEMA: &[u8] = b"mschema";
pub(super) const ENTRY_COUNT: &[u8] = b"mentries";
pub(super) const RECORD_COUNT: &[u8] = b"mrecords";
pub(super) const SEALED_COUNT: &[u8] = b"msealed";
pub(super) const UNREAD_COUNT: &[u8] = b"munread";
pub(super) const ADDED_COUNTER: &[u8] = b"madded";
pub(super) const FEED_COUNTER: &[u8] = b"mfeeds";
/// The next entry number ([`entry_record`]).
pub(super) const ENTRY_NUMBERS: &[u8] = b"mentrynumbers";
/// While a schema 1 store is migrated: the last feed slot (`f` key) migrated.
pub(super) const MIGRATION: &[u8] = b"mmigration";

/// The index names feeds by a local 4-byte number instead of the 32-byte author key: the
/// index holds one key per indicator, and its size decides whether it fits in the cache.
pub(super) fn number(number: u32) -> [u8; 5] {
    let mut key = [0; 5];
    key[0] = NUMBER;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

pub(super) fn entry(id: &Hash) -> [u8; 33] {
    let mut key = [0; 33];
    key[0] = ENTRY;
    key[1..].copy_from_slice(&id.0);
    key
}

pub(super) fn opened(id: &Hash) -> [u8; 33] {
    let mut key = [0; 33];
    key[0] = OPENED;
    key[1..].copy_from_slice(&id.0);
    key
}

pub(super) fn unread(id: &Hash) -> [u8; 33] {
    let mut key = [0; 33];
    key[0] = UNREAD;
    key[1..].copy_from_slice(&id.0);
    key
}

pub(super) fn feed(author: &PublicKey, seq: u64) -> [u8; 41] {
    let mut key = [0; 41];
    key[0] = FEED;
    key[1..33].copy_from_slice(&author.0);
    key[33..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The author in a key made by [`feed`].
pub(super) fn author_of_feed_key(key: &[u8]) -> Option<PublicKey> {
    key.get(1..33)?.try_into().ok().map(PublicKey)
}

/// The seq in a key made by [`feed`].
pub(super) fn seq_of_feed_key(key: &[u8]) -> Option<u64> {
    key.get(33..41)?.try_into().ok().map(u64::from_be_bytes)
}

pub(super) fn conflict(author: &PublicKey, seq: u64, id: &Hash) -> [u8; 73] {
    let mut key = [0; 73];
    key[0] = CONFLICT;
    key[1..33].copy_from_slice(&author.0);
    key[33..41].copy_from_slice(&seq.to_be_bytes());
    key[41..].copy_from_slice(&id.0);
    key
}

pub(super) fn head(author: &PublicKey) -> [u8; 33] {
    let mut key = [0; 33];
    key[0] = HEAD;
    key[1..].copy_from_slice(&author.0);
    key
}

/// The author in a key made by [`head`].
pub(super) fn author_of_head_key(key: &[u8]) -> Option<PublicKey> {
    key.get(1..33)?.try_into().ok().map(PublicKey)
}

/// A stable one-byte code per kind: the storage format must not depend on enum order.
fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Ipv4 => 1,
        Kind::Ipv6 => 2,
        Kind::Cidr => 3,
        Kind::Domain => 4,
        Kind::Url => 5,
        Kind::Email => 6,
        Kind::Md5 => 7,
        Kind::Sha1 => 8,
        Kind::Sha256 => 9,
        Kind::Sha512 => 10,
        Kind::Asn => 11,
        Kind::Cve => 12,
        Kind::StixPattern => 13,
    }
}

/// Every record about `value`, schema 2: the kind's code and the value packed. Addresses
/// and hashes are packed as their bytes, which have one length per kind, so no value's
/// key starts with another's; other values are their text and a 0 (normal forms contain
/// no NUL: control characters are refused), so `a.com` does not match `a.com.evil`.
pub(super) fn value_prefix(value: &Value) -> Vec<u8> {
    let text = value.as_str();
    let code = kind_code(value.kind());
    let mut key = Vec::with_capacity(3 + text.len() + 6);
    key.push(INDEX);
    let packed = match value.kind() {
        Kind::Ipv4 => text
            .parse::<std::net::Ipv4Addr>()
            .ok()
            .map(|address| address.octets().to_vec()),
        Kind::Ipv6 => text
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|address| address.octets().to_vec()),
        Kind::Md5 | Kind::Sha1 | Kind::Sha256 | Kind::Sha512 => lower_hex(text),
        _ => None,
    };
    match packed {
        Some(bytes) => {
            key.push(code);
            key.extend_from_slice(&bytes);
        }
        // A value of a packed kind that does not pack (never for a normal form) keeps its
        // text under a code of its own, so it cannot meet a packed one.
        None => {
            key.push(if packs(value.kind()) {
                code | 0x80
            } else {
                code
            });
            key.extend_from_slice(text.as_bytes());
            key.push(0);
        }
    }
    key
}

fn packs(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Ipv4 | Kind::Ipv6 | Kind::Md5 | Kind::Sha1 | Kind::Sha256 | Kind::Sha512
    )
}

/// The bytes of lowercase hex `text` (a hash's normal form); `None` for anything else, so
/// two texts never pack to the same bytes.
fn lower_hex(text: &str) -> Option<Vec<u8>> {
    let digit = |byte: u8| match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        _ => None,
    };
    if !text.len().is_multiple_of(2) {
        return None;
    }
    text.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The index key of item `item` of the entry numbered `entry` (schema 2).
pub(super) fn index(value: &Value, entry: u32, item: u16) -> Vec<u8> {
    let mut key = value_prefix(value);
    key.extend_from_slice(&entry.to_be_bytes());
    key.extend_from_slice(&item.to_be_bytes());
    key
}

/// The entry number and item at the end of a key made by [`index`].
pub(super) fn entry_item_of_index_key(key: &[u8]) -> Option<(u32, u16)> {
    let tail = key
        .len()
        .checked_sub(6)
        .and_then(|start| key.get(start..))?;
    let entry = u32::from_be_bytes(tail[..4].try_into().ok()?);
    let item = u16::from_be_bytes(tail[4..6].try_into().ok()?);
    Some((entry, item))
}

/// The key of entry number `number`'s index record.
pub(super) fn entry_record(number: u32) -> [u8; 5] {
    let mut key = [0; 5];
    key[0] = ENTRY_RECORD;
    key[1..].copy_from_slice(&number.to_be_bytes());
    key
}

/// Schema 1's index key of item `item` of the entry at `(feed, seq)`: the keys the
/// migration removes.
pub(super) fn v1_index(value: &Value, feed: u32, seq: u64, item: u32) -> Vec<u8> {
    let text = value.as_str().as_bytes();
    let mut key = Vec::with_capacity(3 + text.len() + 16);
    key.push(V1_INDEX);
    key.push(kind_code(value.kind()));
    key.extend_from_slice(text);
    key.push(0);
    key.extend_from_slice(&feed.to_be_bytes());
    key.extend_from_slice(&seq.to_be_bytes());
    key.extend_from_slice(&item.to_be_bytes());
    key
}

pub(super) fn added(at: Timestamp, counter: u64) -> [u8; 17] {
    let mut key = [0; 17];
    key[0] = ADDED;
    key[1..9].copy_from_slice(&at.0.to_be_bytes());
    key[9..].copy_from_slice(&counter.to_be_bytes());
    key
}

/// The time in a key made by [`added`].
pub(super) fn time_of_added_key(key: &[u8]) -> Option<Timestamp> {
    key.get(1..9)?
        .try_into()
        .ok()
        .map(|bytes| Timestamp(u64::from_be_bytes(bytes)))
}

pub(super) fn charter(version: u64, id: &Hash) -> [u8; 41] {
    let mut key = [0; 41];
    key[..9].copy_from_slice(&charters_from(version));
    key[9..].copy_from_slice(&id.0);
    key
}

/// Where the charters of `version` and later start.
pub(super) fn charters_from(version: u64) -> [u8; 9] {
    let mut key = [0; 9];
    key[0] = CHARTER;
    key[1..].copy_from_slice(&version.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_prefix_does_not_match_another_value() {
        for (kind, short, long) in [
            (Kind::Ipv4, "1.2.3.4", "1.2.3.45"),
            (Kind::Domain, "a.example.com", "a.example.com.evil.net"),
            (
                Kind::Md5,
                "d41d8cd98f00b204e9800998ecf8427e",
                "d41d8cd98f00b204e9800998ecf8427f",
            ),
        ] {
            let short = Value::parse(kind, short).unwrap();
            let long = Value::parse(kind, long).unwrap();
            let key = index(&long, 3, 7);
            assert!(!key.starts_with(&value_prefix(&short)), "{short}");
            assert!(key.starts_with(&value_prefix(&long)));
            assert_eq!(entry_item_of_index_key(&key), Some((3, 7)));
        }
    }

    #[test]
    fn addresses_and_hashes_are_packed_as_bytes() {
        let ip = Value::parse(Kind::Ipv4, "192.0.2.1").unwrap();
        assert_eq!(value_prefix(&ip), [INDEX, 1, 192, 0, 2, 1]);
        let sha256 = Value::parse(Kind::Sha256, &"ab".repeat(32)).unwrap();
        assert_eq!(value_prefix(&sha256).len(), 2 + 32);
        let ipv6 = Value::parse(Kind::Ipv6, "2001:db8::1").unwrap();
        assert_eq!(value_prefix(&ipv6).len(), 2 + 16);
        // Text kinds keep their text, ended by a 0.
        let domain = Value::parse(Kind::Domain, "c2.example.com").unwrap();
        assert_eq!(value_prefix(&domain), b"v\x04c2.example.com\x00");
    }

    #[test]
    fn feed_keys_sort_by_seq() {
        let author = PublicKey([9; 32]);
        assert!(feed(&author, 255) < feed(&author, 256));
        assert_eq!(seq_of_feed_key(&feed(&author, 256)), Some(256));
    }
}
