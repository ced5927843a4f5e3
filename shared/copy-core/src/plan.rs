//! How an object is copied: one CopyObject at or below the multipart threshold, else a
//! multipart copy whose parts are at least 5 MiB and at most 10,000.

use crate::size::{format_size, parse_size, GIB, KIB, MIB, TIB};

/// S3's smallest part (all but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// S3's largest part.
pub const MAX_PART_SIZE: u64 = 5 * GIB;
/// S3's most parts in one upload.
pub const MAX_PARTS: u64 = 10_000;
/// The largest object one CopyObject can copy; above it multipart is mandatory.
pub const MAX_SINGLE_COPY: u64 = 5 * GIB;
/// The largest S3 object.
pub const MAX_OBJECT_SIZE: u64 = 5 * TIB;

/// Objects above this size are copied in parts. Small enough that a 24 MiB object is copied
/// in parallel parts; large enough that small objects cost one request.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * MIB;
/// The largest part the automatic part size makes (unless 10,000 parts need larger ones): a
/// 700 MB object copied while every copy slot is busy is 42 part copies.
pub const AUTO_MAX_PART_SIZE: u64 = 16 * MIB;
/// Copy requests (CopyObject or UploadPartCopy) in flight at once, per process.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// How large the parts of a multipart copy are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartSize {
    /// Chosen per object: split finely enough to use the copy slots that are free when the
    /// object is planned, in parts of 5 MiB to [`AUTO_MAX_PART_SIZE`].
    #[default]
    Auto,
    /// This size (raised when needed to keep within 10,000 parts).
    Fixed(u64),
}

impl std::fmt::Display for PartSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartSize::Auto => f.write_str("auto"),
            // Exactly, so that what is printed reads back (a size that is not a whole number
            // of units is written in bytes).
            PartSize::Fixed(size) => f.write_str(&format_size_exact(*size)),
        }
    }
}

/// A size as [`parse_size`] reads it back: whole units (`16 MiB`), else bytes (`5485760`).
pub fn format_size_exact(bytes: u64) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size && bytes % size == 0 {
            return format!("{} {unit}", bytes / size);
        }
    }
    bytes.to_string()
}

/// A part size that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a part size: write auto, a number of bytes, or a whole number followed by KiB, MiB or GiB (8MiB, 1 GiB)")]
pub struct PartSizeError(pub String);

/// Reads a part size: `auto`, or a size as [`parse_size`] reads it.
pub fn parse_part_size(text: &str) -> Result<PartSize, PartSizeError> {
    if text.trim().eq_ignore_ascii_case("auto") {
        Ok(PartSize::Auto)
    } else {
        parse_size(text)
            .map(PartSize::Fixed)
            .map_err(|_| PartSizeError(text.to_owned()))
    }
}

/// The multipart threshold and part size, checked against S3's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    multipart_threshold: u64,
    part_size: PartSize,
}

/// A threshold or part size that S3 cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("the multipart threshold {} is above 5 GiB, the largest object one CopyObject can copy", format_size(*.0))]
    ThresholdTooLarge(u64),
    #[error("the part size {} is below 5 MiB, S3's smallest part", format_size(*.0))]
    PartTooSmall(u64),
    #[error("the part size {} is above 5 GiB, S3's largest part", format_size(*.0))]
    PartTooLarge(u64),
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: PartSize::Auto,
        }
    }
}

impl Thresholds {
    pub fn new(multipart_threshold: u64, part_size: PartSize) -> Result<Self, ThresholdError> {
        if multipart_threshold > MAX_SINGLE_COPY {
            return Err(ThresholdError::ThresholdTooLarge(multipart_threshold));
        }
        if let PartSize::Fixed(size) = part_size {
            if size < MIN_PART_SIZE {
                return Err(ThresholdError::PartTooSmall(size));
            }
            if size > MAX_PART_SIZE {
                return Err(ThresholdError::PartTooLarge(size));
            }
        }
        Ok(Thresholds {
            multipart_threshold,
            part_size,
        })
    }

    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    pub fn part_size(&self) -> PartSize {
        self.part_size
    }
}

/// One part of a multipart copy: bytes `first..=last` of the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    /// 1-based, as S3 numbers parts.
    pub number: i32,
    pub first: u64,
    pub last: u64,
}

impl Part {
    /// The part's size in bytes (never zero).
    pub fn bytes(&self) -> u64 {
        self.last - self.first + 1
    }

    /// The `x-amz-copy-source-range` value.
    pub fn range(&self) -> String {
        format!("bytes={}-{}", self.first, self.last)
    }
}

/// How one object is copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Single,
    Multipart(Vec<Part>),
}

impl Method {
    /// The copy requests it takes: one CopyObject, or one UploadPartCopy per part.
    pub fn copy_requests(&self) -> usize {
        match self {
            Method::Single => 1,
            Method::Multipart(parts) => parts.len(),
        }
    }
}

/// An object S3 cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object is {} and S3 objects are at most 5 TiB", format_size(*.0))]
pub struct TooLarge(pub u64);

/// Chooses the method for an object of `size` bytes, when `free_slots` copy requests could
/// start now without waiting (the automatic part size uses them).
pub fn plan(size: u64, thresholds: &Thresholds, free_slots: usize) -> Result<Method, TooLarge> {
    if size > MAX_OBJECT_SIZE {
        return Err(TooLarge(size));
    }
    if size <= thresholds.multipart_threshold && size <= MAX_SINGLE_COPY {
        return Ok(Method::Single);
    }
    let part_size = part_size_for(size, thresholds.part_size, free_slots);
    let parts = (0..size.div_ceil(part_size))
        .map(|i| Part {
            number: i as i32 + 1,
            first: i * part_size,
            last: ((i + 1) * part_size).min(size) - 1,
        })
        .collect();
    Ok(Method::Multipart(parts))
}

/// The parts of a multipart copy with these part sizes, in order: how a source uploaded in
/// parts is copied part for part, so that the copy's ETag is the source's.
pub fn parts_of(sizes: &[u64]) -> Vec<Part> {
    let mut first = 0;
    (sizes.iter().enumerate())
        .map(|(i, &size)| {
            let part = Part {
                number: i as i32 + 1,
                first,
                last: first + size - 1,
            };
            first += size;
            part
        })
        .collect()
}

/// Why a part layout cannot be copied part for part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("{0} parts, and S3 copies at most 10,000")]
    TooManyParts(usize),
    #[error("part {number} is {}, below S3's smallest part but the last (5 MiB)", format_size(*.size))]
    PartTooSmall { number: usize, size: u64 },
    #[error("part {number} is {}, above S3's largest part (5 GiB)", format_size(*.size))]
    PartTooLarge { number: usize, size: u64 },
    #[error("the parts add up to {} and the object is {}", format_size(*.parts), format_size(*.object))]
    WrongTotal { parts: u64, object: u64 },
}

/// Checks that parts of these sizes tile an object of `size` bytes within S3's limits.
pub fn check_layout(sizes: &[u64], size: u64) -> Result<(), LayoutError> {
    if sizes.is_empty() || sizes.len() as u64 > MAX_PARTS {
        return Err(LayoutError::TooManyParts(sizes.len()));
    }
    for (i, &part) in sizes.iter().enumerate() {
        let number = i + 1;
        if part > MAX_PART_SIZE {
            return Err(LayoutError::PartTooLarge { number, size: part });
        }
        if part == 0 || (part < MIN_PART_SIZE && number < sizes.len()) {
            return Err(LayoutError::PartTooSmall { number, size: part });
        }
    }
    let total: u64 = sizes.iter().sum();
    if total != size {
        return Err(LayoutError::WrongTotal {
            parts: total,
            object: size,
        });
    }
    Ok(())
}

/// The part size for an object of `size` bytes: the fixed size, or the automatic one for
/// `free_slots`; raised when needed so that `size` takes at most 10,000 parts.
pub fn part_size_for(size: u64, part_size: PartSize, free_slots: usize) -> u64 {
    let wanted = match part_size {
        PartSize::Fixed(size) => size,
        // As many parts as there are free slots, in whole MiB, 5 to 16 MiB each.
        PartSize::Auto => (size.div_ceil(free_slots.max(1) as u64).div_ceil(MIB) * MIB)
            .clamp(MIN_PART_SIZE, AUTO_MAX_PART_SIZE),
    };
    wanted
        .max(size.div_ceil(MAX_PARTS))
        .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by fuzzing (docs/reliability.md): 5485760 printed as "5.23 MiB", which no reader
    /// takes back.
    #[test]
    fn a_part_size_prints_as_it_reads_back() {
        for size in [5_485_760, 16 * MIB, GIB, 5 * GIB + 1, 1536, 0] {
            let printed = PartSize::Fixed(size).to_string();
            assert_eq!(
                parse_part_size(&printed),
                Ok(PartSize::Fixed(size)),
                "{printed}"
            );
        }
        assert_eq!(PartSize::Fixed(5_485_760).to_string(), "5485760");
        assert_eq!(PartSize::Fixed(16 * MIB).to_string(), "16 MiB");
    }

    fn fixed(threshold: u64, part_size: u64) -> Thresholds {
        Thresholds::new(threshold, PartSize::Fixed(part_size)).unwrap()
    }

    fn parts(size: u64, thresholds: &Thresholds, free_slots: usize) -> Vec<Part> {
        match plan(size, thresholds, free_slots).unwrap() {
            Method::Multipart(parts) => parts,
            Method::Single => panic!("{size} should be multipart"),
        }
    }

    #[test]
    fn at_or_below_the_threshold_is_one_copy() {
        let t = Thresholds::default();
        assert_eq!(plan(0, &t, 1), Ok(Method::Single));
        assert_eq!(plan(DEFAULT_MULTIPART_THRESHOLD, &t, 1), Ok(Method::Single));
        assert!(matches!(
            plan(DEFAULT_MULTIPART_THRESHOLD + 1, &t, 1),
            Ok(Method::Multipart(_))
        ));
    }

    #[test]
    fn auto_parts_fill_the_free_slots_with_parts_of_5_to_16_mib() {
        let t = Thresholds::default();
        // Every slot free: a 256 MiB object becomes 52 parts of 5 MiB (the last 1 MiB).
        let p = parts(256 * MIB, &t, DEFAULT_CONCURRENCY);
        assert_eq!(p.len(), 52);
        assert_eq!(p[0].bytes(), 5 * MIB);
        assert_eq!(p[51].bytes(), MIB);
        // Eight free slots: eight parts of 32 MiB would be too large, so 16 of 16 MiB.
        assert_eq!(parts(256 * MIB, &t, 8).len(), 16);
        // Twenty free slots: 256 MiB / 20 = 12.8 MiB, rounded up to 13 MiB: 20 parts.
        let p = parts(256 * MIB, &t, 20);
        assert_eq!((p.len(), p[0].bytes()), (20, 13 * MIB));
        // No free slot (all busy): the largest automatic part.
        assert_eq!(parts(256 * MIB, &t, 0).len(), 16);
        // The original's 700 MB object when the copier is busy: 42 parts of 16 MiB.
        let p = parts(700_000_000, &t, 0);
        assert_eq!(p.len(), 42);
        assert_eq!(p[0].range(), "bytes=0-16777215");
        assert_eq!(p[41].last, 700_000_000 - 1);
    }

    #[test]
    fn a_fixed_part_size_ignores_the_free_slots() {
        let t = fixed(DEFAULT_MULTIPART_THRESHOLD, 8 * MIB);
        assert_eq!(parts(256 * MIB, &t, 1).len(), 32);
        assert_eq!(parts(256 * MIB, &t, 1000).len(), 32);
    }

    #[test]
    fn above_5_gib_is_multipart_whatever_the_threshold() {
        let t = fixed(MAX_SINGLE_COPY, MIN_PART_SIZE);
        assert_eq!(plan(MAX_SINGLE_COPY, &t, 1), Ok(Method::Single));
        assert!(matches!(
            plan(MAX_SINGLE_COPY + 1, &t, 1),
            Ok(Method::Multipart(_))
        ));
    }

    #[test]
    fn a_5_tib_object_takes_at_most_10000_parts() {
        for t in [Thresholds::default(), fixed(0, MIN_PART_SIZE)] {
            let p = parts(MAX_OBJECT_SIZE, &t, DEFAULT_CONCURRENCY);
            assert!(p.len() as u64 <= MAX_PARTS);
            assert!(plan(MAX_OBJECT_SIZE + 1, &t, 1).is_err());
        }
    }

    #[test]
    fn limits_are_checked() {
        let fixed = |threshold, size| Thresholds::new(threshold, PartSize::Fixed(size));
        assert_eq!(
            fixed(0, MIN_PART_SIZE - 1),
            Err(ThresholdError::PartTooSmall(MIN_PART_SIZE - 1))
        );
        assert!(fixed(0, MAX_PART_SIZE + 1).is_err());
        let err = fixed(6 * GIB, 8 * MIB).unwrap_err();
        assert!(err.to_string().contains("above 5 GiB"), "{err}");
        assert!(fixed(0, MIN_PART_SIZE).is_ok());
        assert!(Thresholds::new(6 * GIB, PartSize::Auto).is_err());
    }

    #[test]
    fn part_sizes_are_read_as_auto_or_a_size() {
        assert_eq!(parse_part_size("auto"), Ok(PartSize::Auto));
        assert_eq!(parse_part_size(" AUTO "), Ok(PartSize::Auto));
        assert_eq!(parse_part_size("8MiB"), Ok(PartSize::Fixed(8 * MIB)));
        let err = parse_part_size("big").unwrap_err().to_string();
        assert!(
            err.contains("\"big\" is not a part size: write auto"),
            "{err}"
        );
        assert_eq!(PartSize::Auto.to_string(), "auto");
        assert_eq!(PartSize::Fixed(8 * MIB).to_string(), "8 MiB");
    }

    #[test]
    fn a_layout_is_copied_part_for_part_within_s3_limits() {
        let sizes = [6 * MIB, 5 * MIB, 1000];
        let parts = parts_of(&sizes);
        assert_eq!(parts.len(), 3);
        assert_eq!(
            parts[1].range(),
            format!("bytes={}-{}", 6 * MIB, 11 * MIB - 1)
        );
        assert_eq!(parts[2].bytes(), 1000);
        assert_eq!(check_layout(&sizes, 11 * MIB + 1000), Ok(()));
        assert_eq!(
            check_layout(&sizes, 11 * MIB),
            Err(LayoutError::WrongTotal {
                parts: 11 * MIB + 1000,
                object: 11 * MIB
            })
        );
        assert_eq!(
            check_layout(&[MIB, 5 * MIB], 6 * MIB),
            Err(LayoutError::PartTooSmall {
                number: 1,
                size: MIB
            })
        );
        assert!(check_layout(&[6 * GIB], 6 * GIB).is_err());
        assert!(check_layout(&[], 0).is_err());
        assert!(check_layout(&vec![MIN_PART_SIZE; 10_001], 10_001 * MIN_PART_SIZE).is_err());
        let err = check_layout(&[MIB, 5 * MIB], 6 * MIB)
            .unwrap_err()
            .to_string();
        assert!(err.contains("part 1 is 1 MiB"), "{err}");
    }

    fn any_part_size() -> impl Strategy<Value = PartSize> {
        prop_oneof![
            Just(PartSize::Auto),
            (MIN_PART_SIZE..=MAX_PART_SIZE).prop_map(PartSize::Fixed),
        ]
    }

    proptest! {
        #[test]
        fn parts_tile_the_object_within_s3_limits(
            size in 0u64..=MAX_OBJECT_SIZE,
            threshold in 0u64..=MAX_SINGLE_COPY,
            part_size in any_part_size(),
            free_slots in 0usize..=4096,
        ) {
            let t = Thresholds::new(threshold, part_size).unwrap();
            match plan(size, &t, free_slots).unwrap() {
                Method::Single => prop_assert!(size <= threshold && size <= MAX_SINGLE_COPY),
                Method::Multipart(parts) => {
                    prop_assert!(size > threshold || size > MAX_SINGLE_COPY);
                    prop_assert!(!parts.is_empty() && parts.len() as u64 <= MAX_PARTS);
                    let mut next = 0;
                    for (i, part) in parts.iter().enumerate() {
                        prop_assert_eq!(part.number as usize, i + 1);
                        prop_assert_eq!(part.first, next);
                        prop_assert!(part.bytes() <= MAX_PART_SIZE);
                        if i + 1 < parts.len() {
                            prop_assert!(part.bytes() >= MIN_PART_SIZE);
                        }
                        next = part.last + 1;
                    }
                    prop_assert_eq!(next, size);
                }
            }
        }

        #[test]
        fn auto_parts_are_as_large_as_fills_the_free_slots(
            size in 0u64..=64 * GIB,
            free_slots in 1usize..=4096,
        ) {
            let part = part_size_for(size, PartSize::Auto, free_slots);
            prop_assert!((MIN_PART_SIZE..=AUTO_MAX_PART_SIZE).contains(&part));
            prop_assert_eq!(part % MIB, 0);
            if part < AUTO_MAX_PART_SIZE {
                // Not more parts than free slots…
                prop_assert!(size.div_ceil(part) <= free_slots as u64);
            }
            if part > MIN_PART_SIZE {
                // …and not fewer than needed: a MiB less per part would need more slots.
                prop_assert!(size.div_ceil(part - MIB) > free_slots as u64);
            }
        }
    }
}
