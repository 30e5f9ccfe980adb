#![allow(clippy::unwrap_used)]

use super::*;

fn header() -> Header {
    Header {
        federation: Hash([7; 32]),
        node: PublicKey([8; 32]),
        organisation: Some(PublicKey([9; 32])),
        created: Timestamp(1_700_000_000_000),
        since: Some(Timestamp(1_600_000_000_000)),
        organisations: vec![PublicKey([10; 32])],
    }
}

/// The payloads an archive carries in these tests: the decoder does not look inside them.
fn payloads() -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let charters = vec![vec![0xc1; 40], vec![0xc2; 60]];
    let entries = (0..4u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    (charters, entries)
}

/// An archive, and the offset where each frame starts (header first, trailer last).
fn archive() -> (Vec<u8>, Vec<usize>) {
    let (charters, entries) = payloads();
    let mut out = Vec::new();
    let mut starts = vec![MAGIC.len()];
    let mut encoder = Encoder::new(&header(), &mut out).unwrap();
    for charter in &charters {
        starts.push(out.len());
        encoder.charter(charter, &mut out).unwrap();
    }
    for entry in &entries {
        starts.push(out.len());
        encoder.entry(entry, &mut out).unwrap();
    }
    starts.push(out.len());
    let trailer = encoder.finish(&mut out).unwrap();
    assert_eq!((trailer.charters, trailer.entries), (2, 4));
    (out, starts)
}

/// Every frame `bytes` yields fed in chunks of `chunk` bytes, and the first error, of
/// reading or of finishing.
fn decode(bytes: &[u8], chunk: usize) -> (Vec<Framed>, Option<ArchiveError>) {
    let mut decoder = Decoder::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        decoder.feed(piece);
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
    }
    (frames, decoder.finish().err())
}

#[test]
fn archive_round_trips_in_chunks_of_any_size() {
    let (bytes, starts) = archive();
    let (charters, entries) = payloads();
    for chunk in [1, 3, 7, 64, 1000, bytes.len()] {
        let (frames, error) = decode(&bytes, chunk);
        assert_eq!(error, None, "chunk {chunk}");
        assert_eq!(frames.len(), starts.len());
        assert_eq!(frames[0].frame, Frame::Header(header()));
        for (framed, start) in frames.iter().zip(&starts) {
            assert_eq!(framed.position, *start as u64);
        }
        assert_eq!(frames[1].frame, Frame::Charter(charters[0].clone()));
        assert_eq!(frames[2].frame, Frame::Charter(charters[1].clone()));
        for (index, entry) in entries.iter().enumerate() {
            assert_eq!(frames[3 + index].frame, Frame::Entry(entry.clone()));
        }
        let Frame::Trailer(trailer) = &frames[7].frame else {
            panic!("no trailer last");
        };
        assert_eq!((trailer.charters, trailer.entries), (2, 4));
        assert_eq!(trailer.digest, Hash::of(&bytes[..starts[7]]));
    }
}

#[test]
fn an_archive_cut_anywhere_gives_the_frames_before_the_cut_then_says_truncated() {
    let (bytes, starts) = archive();
    for cut in 0..bytes.len() {
        let (frames, error) = decode(&bytes[..cut], 5);
        let error = error.unwrap_or_else(|| panic!("cut at {cut} not noticed"));
        assert!(
            matches!(error.fault, Fault::Truncated(_)),
            "cut at {cut}: {error}"
        );
        assert_eq!(error.position, cut as u64, "cut at {cut}");
        // Exactly the frames that end at or before the cut.
        let whole = starts
            .iter()
            .skip(1)
            .chain(std::iter::once(&bytes.len()))
            .filter(|end| **end <= cut)
            .count();
        assert_eq!(frames.len(), whole, "cut at {cut}");
    }
}

#[test]
fn a_flipped_byte_is_caught_at_its_frame_and_nothing_from_there_on_is_given_out() {
    let (bytes, starts) = archive();
    for at in 0..bytes.len() {
        let mut altered = bytes.clone();
        altered[at] ^= 0x20;
        let (frames, error) = decode(&altered, 11);
        let error = error.unwrap_or_else(|| panic!("flip at {at} not noticed"));
        let frame = starts.iter().rposition(|start| *start <= at);
        let Some(frame) = frame else {
            assert_eq!(error.fault, Fault::WrongMagic, "flip at {at}");
            assert_eq!(error.position, 0);
            continue;
        };
        assert_eq!(frames.len(), frame, "flip at {at}: {error}");
        if let Fault::Truncated(_) = error.fault {
            // A length made larger: the frame waits for bytes that never come.
            assert!((starts[frame] + 1..starts[frame] + FRAME_HEAD_BYTES).contains(&at));
        } else {
            assert_eq!(
                error.position, starts[frame] as u64,
                "flip at {at}: {error}"
            );
        }
    }
}

#[test]
fn reordered_frames_fail_the_check_of_the_first_moved() {
    let (bytes, starts) = archive();
    // Swap the second and third entries (frames 4 and 5).
    let (a, b, c) = (starts[4], starts[5], starts[6]);
    let mut swapped = bytes[..a].to_vec();
    swapped.extend_from_slice(&bytes[b..c]);
    swapped.extend_from_slice(&bytes[a..b]);
    swapped.extend_from_slice(&bytes[c..]);
    let (frames, error) = decode(&swapped, 4096);
    let error = error.unwrap();
    assert_eq!(
        error.fault,
        Fault::BadCheck {
            index: 4,
            kind: "entry"
        }
    );
    assert_eq!(error.position, a as u64);
    assert_eq!(frames.len(), 4);
}

#[test]
fn a_dropped_frame_fails_the_check_of_the_next() {
    let (bytes, starts) = archive();
    let mut dropped = bytes[..starts[4]].to_vec();
    dropped.extend_from_slice(&bytes[starts[5]..]);
    let (frames, error) = decode(&dropped, 4096);
    let error = error.unwrap();
    assert!(matches!(error.fault, Fault::BadCheck { index: 4, .. }));
    assert_eq!(frames.len(), 4);
}

#[test]
fn wrong_magic_is_refused_at_byte_zero() {
    let (mut bytes, _) = archive();
    // What a text-mode transfer does: CRLF turned into LF.
    bytes.remove(4);
    let (frames, error) = decode(&bytes, 4096);
    assert!(frames.is_empty());
    assert_eq!(
        error,
        Some(ArchiveError {
            position: 0,
            fault: Fault::WrongMagic
        })
    );
    let (_, error) = decode(b"{\"not\": \"an archive\"}", 4096);
    assert_eq!(error.unwrap().fault, Fault::WrongMagic);
}

#[test]
fn an_oversized_length_is_refused_before_its_body_arrives() {
    let (bytes, starts) = archive();
    let mut oversized = bytes[..starts[3]].to_vec();
    oversized.push(Kind::Entry.byte());
    oversized.extend_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_le_bytes());
    let (frames, error) = decode(&oversized, 4096);
    assert_eq!(frames.len(), 3);
    assert_eq!(
        error,
        Some(ArchiveError {
            position: starts[3] as u64,
            fault: Fault::TooLarge {
                kind: "entry",
                len: MAX_PAYLOAD_BYTES + 1,
                max: MAX_PAYLOAD_BYTES
            }
        })
    );
    // A header may not be a payload's size.
    let mut oversized = MAGIC.to_vec();
    oversized.push(Kind::Header.byte());
    oversized.extend_from_slice(&(MAX_META_BYTES + 1).to_le_bytes());
    let (_, error) = decode(&oversized, 4096);
    assert!(matches!(
        error.unwrap().fault,
        Fault::TooLarge { kind: "header", .. }
    ));
}

#[test]
fn bytes_after_the_trailer_are_refused() {
    let (mut bytes, _) = archive();
    let end = bytes.len() as u64;
    bytes.push(0);
    let (frames, error) = decode(&bytes, 4096);
    assert_eq!(frames.len(), 8);
    assert_eq!(
        error,
        Some(ArchiveError {
            position: end,
            fault: Fault::TrailingBytes
        })
    );
}

#[test]
fn frames_out_of_order_are_refused() {
    // An archive whose first frame is an entry, its check right: refused for its place.
    let mut bytes = MAGIC.to_vec();
    let mut encoder = Encoder {
        check: first_check(),
        digest: Sha256::new(),
        charters: 0,
        entries: 0,
    };
    encoder.frame(Kind::Entry, &[1, 2, 3], &mut bytes).unwrap();
    let (_, error) = decode(&bytes, 4096);
    assert_eq!(
        error.unwrap().fault,
        Fault::OutOfOrder {
            found: "entry",
            expected: "the header"
        }
    );
    // The encoder will not put a charter after an entry.
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&header(), &mut out).unwrap();
    encoder.entry(&[1], &mut out).unwrap();
    assert_eq!(
        encoder.charter(&[2], &mut out),
        Err(EncodeError::CharterAfterEntries)
    );
}

#[test]
fn an_unknown_format_version_is_named() {
    let mut bytes = MAGIC.to_vec();
    let mut encoder = Encoder {
        check: first_check(),
        digest: Sha256::new(),
        charters: 0,
        entries: 0,
    };
    let mut body = encode_header(&header());
    body[0] = 2;
    encoder.frame(Kind::Header, &body, &mut bytes).unwrap();
    let (_, error) = decode(&bytes, 4096);
    assert_eq!(
        error,
        Some(ArchiveError {
            position: MAGIC.len() as u64,
            fault: Fault::UnsupportedVersion(2)
        })
    );
}

#[test]
fn encoder_refuses_a_payload_over_the_gossip_limit() {
    let mut out = Vec::new();
    let mut encoder = Encoder::new(&header(), &mut out).unwrap();
    let big = vec![0; MAX_PAYLOAD_BYTES as usize + 1];
    assert!(matches!(
        encoder.entry(&big, &mut out),
        Err(EncodeError::TooLarge { kind: "entry", .. })
    ));
}
