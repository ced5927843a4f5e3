//! Whether an object needs copying: compared by content (size and ETag, the source ETag recorded
//! in the destination's metadata, or a full-object checksum); time only to copy again a source
//! modified after its copy was written.
//!
//! The destination is listed beside the source; both listings come in key order and the key
//! mapping keeps that order, so one pass over both ([`DestinationCursor`]) pairs each source
//! object with its destination, without a HEAD per object.

use std::collections::VecDeque;

/// The user-metadata key under which a copy records its source's ETag. A multipart copy's ETag
/// differs from its source's, and so does any copy's under SSE-KMS; this one does not.
pub const SOURCE_ETAG_METADATA: &str = "fanout-source-etag";

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// Seconds since the Unix epoch.
    pub last_modified: Option<i64>,
    /// In an archive storage class (GLACIER, DEEP_ARCHIVE): it can only be copied once
    /// restored.
    pub archived: bool,
}

/// What the listings say about one source object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The destination has the same size and ETag.
    Skip,
    /// The destination is missing or has another size.
    Copy,
    /// Same size, other ETag: the destination's recorded source ETag or checksum decides.
    Check,
}

/// A full-object checksum (`ChecksumType: FULL_OBJECT`), comparable across part layouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: &'static str,
    pub value: String,
}

/// What a HEAD says about an object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    pub size: u64,
    pub etag: String,
    /// [`SOURCE_ETAG_METADATA`], if a copy recorded it.
    pub recorded_source_etag: Option<String>,
    pub checksum: Option<Checksum>,
}

/// Compares ETags with or without their quotes.
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// Decides from the listings alone. A source modified after its copy was written is copied
/// again even with the same size and ETag: a copy in place that edits only metadata keeps the
/// ETag.
pub fn decide(source: &Listed, destination: Option<&Listed>) -> Decision {
    let newer = |dest: &Listed| matches!((source.last_modified, dest.last_modified), (Some(s), Some(d)) if s > d);
    match destination {
        None => Decision::Copy,
        Some(dest) if dest.size != source.size || newer(dest) => Decision::Copy,
        Some(dest) if same_etag(&dest.etag, &source.etag) => Decision::Skip,
        Some(_) => Decision::Check,
    }
}

/// How many parts an object was uploaded in, from its ETag (`"…-N"`); `None` for an object
/// not uploaded in parts.
pub fn parts_in_etag(etag: &str) -> Option<u32> {
    let (hash, parts) = etag.trim_matches('"').rsplit_once('-')?;
    let hex =
        |text: &str, digit: fn(&u8) -> bool| !text.is_empty() && text.bytes().all(|b| digit(&b));
    if !hex(hash, u8::is_ascii_hexdigit) || !hex(parts, u8::is_ascii_digit) {
        return None;
    }
    parts.parse().ok().filter(|&n| n > 0)
}

/// Whether the destination already holds the source's content, from a HEAD of the destination
/// and, when there is one, the source's full-object checksum. Two checksums of one algorithm
/// decide alone: a copy whose checksum differs is not the source, whatever it recorded.
/// Otherwise the recorded source ETag, or the ETag itself, decides.
pub fn unchanged(
    source_size: u64,
    source_etag: &str,
    source_checksum: Option<&Checksum>,
    destination: &Observed,
) -> bool {
    if destination.size != source_size {
        return false;
    }
    if let (Some(source), Some(copy)) = (source_checksum, &destination.checksum) {
        if source.algorithm == copy.algorithm {
            return source.value == copy.value;
        }
    }
    let recorded = destination
        .recorded_source_etag
        .as_deref()
        .is_some_and(|etag| same_etag(etag, source_etag));
    recorded || same_etag(&destination.etag, source_etag)
}

/// The destination listing, consumed in step with the source listing.
#[derive(Debug, Default)]
pub struct DestinationCursor {
    pending: VecDeque<Listed>,
    exhausted: bool,
}

/// Where a destination key stands in the destination listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seek {
    Found(Listed),
    Absent,
    /// The listing so far ends before the key: fetch the next destination page.
    NeedMore,
}

impl DestinationCursor {
    /// A cursor over a destination known to be empty (no bucket, say).
    pub fn empty() -> Self {
        DestinationCursor {
            pending: VecDeque::new(),
            exhausted: true,
        }
    }

    /// Appends the next page of the destination listing; `last` when no page follows.
    pub fn push_page(&mut self, objects: Vec<Listed>, last: bool) {
        self.pending.extend(objects);
        self.exhausted = last;
    }

    /// Finds `key`, dropping the entries before it. Keys must be sought in ascending order.
    pub fn seek(&mut self, key: &str) -> Seek {
        while let Some(front) = self.pending.front() {
            match front.key.as_str().cmp(key) {
                std::cmp::Ordering::Less => {
                    self.pending.pop_front();
                }
                std::cmp::Ordering::Equal => {
                    return self.pending.pop_front().map_or(Seek::Absent, Seek::Found)
                }
                std::cmp::Ordering::Greater => return Seek::Absent,
            }
        }
        if self.exhausted {
            Seek::Absent
        } else {
            Seek::NeedMore
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn listed(key: &str, size: u64, etag: &str) -> Listed {
        Listed {
            key: key.into(),
            size,
            etag: etag.into(),
            last_modified: None,
            archived: false,
        }
    }

    #[test]
    fn decides_by_size_and_etag() {
        let src = listed("k", 10, "\"abc\"");
        assert_eq!(decide(&src, None), Decision::Copy);
        assert_eq!(
            decide(&src, Some(&listed("k", 11, "\"abc\""))),
            Decision::Copy
        );
        assert_eq!(decide(&src, Some(&listed("k", 10, "abc"))), Decision::Skip);
        assert_eq!(
            decide(&src, Some(&listed("k", 10, "\"def-2\""))),
            Decision::Check
        );
    }

    #[test]
    fn a_source_modified_after_its_copy_is_copied_again() {
        let at = |size, etag: &str, when| Listed {
            last_modified: Some(when),
            ..listed("k", size, etag)
        };
        // A copy in place that changed only metadata: same size and ETag, a later time.
        assert_eq!(
            decide(&at(10, "\"abc\"", 2_000), Some(&at(10, "\"abc\"", 1_000))),
            Decision::Copy
        );
        // The copy was written after the source: unchanged.
        assert_eq!(
            decide(&at(10, "\"abc\"", 1_000), Some(&at(10, "\"abc\"", 1_500))),
            Decision::Skip
        );
        assert_eq!(
            decide(&at(10, "\"abc\"", 1_000), Some(&at(10, "\"m-2\"", 1_500))),
            Decision::Check
        );
        assert_eq!(
            decide(&at(10, "\"abc\"", 2_000), Some(&at(10, "\"m-2\"", 1_500))),
            Decision::Copy
        );
        // Without times (an old listing), size and ETag decide.
        assert_eq!(
            decide(&listed("k", 10, "\"abc\""), Some(&at(10, "\"abc\"", 1_000))),
            Decision::Skip
        );
    }

    #[test]
    fn a_head_decides_by_recorded_etag_or_checksum() {
        let crc = |v: &str| Checksum {
            algorithm: "CRC64NVME",
            value: v.into(),
        };
        let dest = |recorded: Option<&str>, checksum: Option<Checksum>| Observed {
            size: 10,
            etag: "\"multipart-3\"".into(),
            recorded_source_etag: recorded.map(str::to_owned),
            checksum,
        };
        assert!(unchanged(10, "\"abc\"", None, &dest(Some("\"abc\""), None)));
        assert!(!unchanged(
            10,
            "\"abc\"",
            None,
            &dest(Some("\"old\""), None)
        ));
        assert!(!unchanged(10, "\"abc\"", None, &dest(None, None)));
        assert!(unchanged(
            10,
            "\"abc\"",
            Some(&crc("x")),
            &dest(None, Some(crc("x")))
        ));
        assert!(!unchanged(
            10,
            "\"abc\"",
            Some(&crc("x")),
            &dest(None, Some(crc("y")))
        ));
        assert!(!unchanged(
            11,
            "\"abc\"",
            None,
            &dest(Some("\"abc\""), None)
        ));
        // A copy that recorded its source but whose checksum is another: not the source.
        assert!(!unchanged(
            10,
            "\"abc\"",
            Some(&crc("x")),
            &dest(Some("\"abc\""), Some(crc("y")))
        ));
        // Checksums of two algorithms say nothing: the record decides.
        let sha = Checksum {
            algorithm: "SHA256",
            value: "x".into(),
        };
        assert!(unchanged(
            10,
            "\"abc\"",
            Some(&sha),
            &dest(Some("\"abc\""), Some(crc("y")))
        ));
    }

    #[test]
    fn the_parts_an_object_was_uploaded_in_show_in_its_etag() {
        assert_eq!(
            parts_in_etag("\"9b2cf535f27731c974343645a3985328-88\""),
            Some(88)
        );
        assert_eq!(parts_in_etag("9b2cf535f27731c974343645a3985328-1"), Some(1));
        assert_eq!(parts_in_etag("\"9b2cf535f27731c974343645a3985328\""), None);
        for odd in [
            "\"-3\"",
            "\"abc-\"",
            "\"abc-x\"",
            "\"abc-0\"",
            "",
            "\"abc--3\"",
        ] {
            assert_eq!(parts_in_etag(odd), None, "{odd}");
        }
    }

    #[test]
    fn the_cursor_asks_for_more_until_the_listing_ends() {
        let mut cursor = DestinationCursor::default();
        assert_eq!(cursor.seek("a"), Seek::NeedMore);
        cursor.push_page(vec![listed("a", 1, "x"), listed("c", 1, "x")], false);
        assert_eq!(cursor.seek("a"), Seek::Found(listed("a", 1, "x")));
        assert_eq!(cursor.seek("b"), Seek::Absent);
        assert_eq!(cursor.seek("d"), Seek::NeedMore);
        cursor.push_page(vec![listed("d", 2, "y")], true);
        assert_eq!(cursor.seek("d"), Seek::Found(listed("d", 2, "y")));
        assert_eq!(cursor.seek("e"), Seek::Absent);
        assert_eq!(DestinationCursor::empty().seek("a"), Seek::Absent);
    }

    proptest! {
        /// Paging through the destination finds exactly what a lookup in the whole listing finds.
        #[test]
        fn the_cursor_agrees_with_a_lookup(
            dest in proptest::collection::btree_set("[a-d]{1,3}", 0..30),
            wanted in proptest::collection::btree_set("[a-d]{1,3}", 0..30),
            page in 1usize..5,
        ) {
            let all: BTreeMap<String, Listed> =
                dest.iter().map(|k| (k.clone(), listed(k, 1, "e"))).collect();
            let entries: Vec<Listed> = all.values().cloned().collect();
            let mut pages = entries.chunks(page).map(<[Listed]>::to_vec);
            let mut cursor = DestinationCursor::default();
            for key in &wanted {
                let found = loop {
                    match cursor.seek(key) {
                        Seek::NeedMore => match pages.next() {
                            Some(p) => {
                                let last = pages.len() == 0;
                                cursor.push_page(p, last)
                            }
                            None => cursor.push_page(Vec::new(), true),
                        },
                        Seek::Found(l) => break Some(l),
                        Seek::Absent => break None,
                    }
                };
                prop_assert_eq!(found.as_ref(), all.get(key));
            }
        }
    }
}
