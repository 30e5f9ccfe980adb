//! One item of a clear entry, read from the entry's payload without decoding its other
//! items.
//!
//! A node reads entries back from its own store, where every entry was decoded, validated
//! and verified before it was written. A reader that wants one item of an entry (a TAXII
//! lookup of one object, in an entry of up to thousands of items) paid for decoding all of
//! them: that was most of a lookup's time. [`Bundle::item_offsets`] says where each item
//! starts, counted from the first item, for the reader to keep beside the entry;
//! [`ClearItem::read`] then decodes the entry's header, its marking and the one item at
//! such an offset. Neither checks anything a stored entry was already checked for, and
//! neither does [`super::SignedEntry::from_store`], which reads a whole stored entry.

use crate::bundle::{Bundle, Distribution, Tlp};
use crate::item::Item;
use crate::wire::{self, DecodeError};

use super::{ENTRY_DOMAIN, EntryHeader};

/// An entry's payload after the version byte, borrowed: `Message::Entry` (variant 0),
/// its signed bytes and its signature.
#[derive(bincode::BorrowDecode)]
enum PayloadFront<'a> {
    Entry(SignedFront<'a>),
}

#[derive(bincode::BorrowDecode)]
struct SignedFront<'a> {
    signed: &'a [u8],
    // Read so that a payload cut short or run on is refused, not to be checked.
    _signature: [u8; 64],
}

/// An entry's fields up to its first item, in `Entry`'s order. A sealed body (variant 1)
/// does not decode as this, which is how [`ClearItem::read`] tells it.
#[derive(bincode::Decode)]
struct ClearFront {
    header: EntryHeader,
    body: BodyFront,
}

#[derive(bincode::Decode)]
enum BodyFront {
    Bundle(BundleFront),
}

#[derive(bincode::Decode)]
struct BundleFront {
    tlp: Tlp,
    // Read to get past it; a clear bundle's readers are the whole federation.
    _distribution: Distribution,
    /// The item count that prefixes the items.
    _items: u64,
}

/// One item of a clear entry, with what its export needs of the rest of the entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearItem {
    /// The entry's header.
    pub header: EntryHeader,
    /// The bundle's marking.
    pub tlp: Tlp,
    /// The item.
    pub item: Item,
}

impl ClearItem {
    /// Reads the item at `offset` (one of [`Bundle::item_offsets`] for this entry's
    /// bundle) from an entry's gossip payload. An error for a sealed entry, a payload that
    /// is not an entry, or an offset past the entry's end; an offset that is not one of
    /// the entry's item offsets gives an error or another item, so readers take offsets
    /// from their own records only.
    pub fn read(payload: &[u8], offset: u32) -> Result<ClearItem, DecodeError> {
        let body = wire::strip_domain(ENTRY_DOMAIN, signed_bytes(payload)?)?;
        let (clear, items_start) = wire::borrow_front::<ClearFront>(body)?;
        let BodyFront::Bundle(bundle) = clear.body;
        let at = usize::try_from(offset)
            .ok()
            .and_then(|offset| items_start.checked_add(offset))
            .and_then(|at| body.get(at..))
            .filter(|rest| !rest.is_empty())
            .ok_or(DecodeError::Unexpected("item past the entry's end"))?;
        let (item, _) = wire::borrow_front::<Item>(at)?;
        Ok(ClearItem {
            header: clear.header,
            tlp: bundle.tlp,
            item,
        })
    }
}

/// The signed bytes inside an entry's gossip payload, borrowed from it.
pub(super) fn signed_bytes(payload: &[u8]) -> Result<&[u8], DecodeError> {
    let message = wire::versioned_body(payload)?;
    let (PayloadFront::Entry(front), read) = wire::borrow_front::<PayloadFront<'_>>(message)
        .map_err(|_| DecodeError::Unexpected("non-entry"))?;
    if read != message.len() {
        return Err(DecodeError::TrailingBytes(message.len() - read));
    }
    Ok(front.signed)
}

impl Bundle {
    /// Where each item starts in the bundle's encoding, counted in bytes from the first
    /// item: what [`ClearItem::read`] takes. Bundles are far below 4 GiB (see
    /// [`super::MAX_BUNDLE_BYTES`]), so offsets fit a `u32`.
    pub fn item_offsets(&self) -> Vec<u32> {
        let mut offsets = Vec::with_capacity(self.items.len());
        let mut at = 0_usize;
        for item in &self.items {
            offsets.push(u32::try_from(at).unwrap_or(u32::MAX));
            at = at.saturating_add(wire::encoded_len(item));
        }
        offsets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{Body, SignedEntry};
    use crate::item::{Revocation, RevocationReason, Sighting};
    use crate::seal::{EncryptionSecret, Recipient, SealContext, Sealed};
    use crate::testing::{self, FEDERATION, T0};
    use crate::wire::WIRE_VERSION;

    fn entry(body: Body) -> SignedEntry {
        SignedEntry::next(&testing::key(1), FEDERATION, None, T0, body).expect("signed")
    }

    /// Items of every kind and of different sizes, so offsets are not multiples of one
    /// size.
    fn mixed() -> Bundle {
        let mut bundle = testing::bundle(3);
        bundle.tlp = Tlp::Amber;
        bundle.items.push(testing::c2_indicator_of(2, 7));
        bundle.items.push(Item::Revocation(Revocation {
            value: testing::value(1),
            reason: RevocationReason::FalsePositive,
            note: Some("sinkholed".into()),
        }));
        bundle.items.push(Item::Sighting(Sighting {
            value: testing::value(2),
            count: 3,
            first_seen: T0,
            last_seen: T0,
            note: None,
        }));
        bundle.items.push(testing::c2_indicator_of(3, 9));
        bundle
    }

    #[test]
    fn every_offset_reads_back_its_item() {
        let bundle = mixed();
        let signed = entry(Body::Bundle(bundle.clone()));
        let offsets = bundle.item_offsets();
        assert_eq!(offsets.len(), bundle.items.len());
        for (offset, item) in offsets.iter().zip(&bundle.items) {
            let read = ClearItem::read(signed.payload(), *offset).expect("item");
            assert_eq!(&read.item, item);
            assert_eq!(read.tlp, Tlp::Amber);
            let entry = signed.entry();
            assert_eq!(
                (read.header.author, read.header.seq, read.header.created),
                (entry.author, entry.seq, entry.created)
            );
        }
    }

    #[test]
    fn a_stored_entry_reads_back_as_signed_and_garbage_is_an_error() {
        let signed = entry(Body::Bundle(mixed()));
        let read = SignedEntry::from_store(signed.payload().to_vec(), signed.id()).expect("read");
        assert_eq!(read, signed);
        for len in 0..signed.payload().len() {
            assert!(
                SignedEntry::from_store(signed.payload()[..len].to_vec(), signed.id()).is_err()
            );
        }
        let mut longer = signed.payload().to_vec();
        longer.push(0);
        assert!(SignedEntry::from_store(longer, signed.id()).is_err());
        assert!(SignedEntry::from_store(Vec::new(), signed.id()).is_err());
    }

    #[test]
    fn a_sealed_entry_or_a_wrong_payload_is_an_error_not_a_panic() {
        let bundle = mixed();
        let payload = entry(Body::Bundle(bundle.clone())).payload().to_vec();
        let past = u32::try_from(payload.len()).expect("small");
        assert!(ClearItem::read(&payload, past).is_err());
        assert!(ClearItem::read(&payload, u32::MAX).is_err());
        assert!(ClearItem::read(&[], 0).is_err());
        assert!(ClearItem::read(&[WIRE_VERSION + 1, 0, 0], 0).is_err());
        // Every truncation is refused or read, never a panic.
        for len in 0..payload.len() {
            let _ = ClearItem::read(&payload[..len], 0);
        }
        let secret = EncryptionSecret::from_bytes([5; 32]);
        let recipient = Recipient {
            org: testing::public(2),
            encryption_key: secret.public_key(),
        };
        let context = SealContext {
            federation: FEDERATION,
            author: testing::public(1),
            seq: 1,
        };
        let sealed = Sealed::seal(&bundle, &[recipient], &context, [7; 32]).expect("sealed");
        let sealed = entry(Body::Sealed(sealed));
        assert!(ClearItem::read(sealed.payload(), 0).is_err());
    }
}
