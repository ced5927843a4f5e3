//! How an object is copied: one CopyObject at or below the multipart threshold, else a
//! multipart copy whose parts are at least 5 MiB and at most 10,000.

use crate::size::{format_size, GIB, MIB, TIB};

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
/// by two parts in parallel; large enough that small objects cost one request.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 * MIB;
/// The preferred part size: a 700 MB object is 42 parallel part copies.
pub const DEFAULT_PART_SIZE: u64 = 16 * MIB;
/// Copy requests (CopyObject or UploadPartCopy) in flight at once, per process.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// The multipart threshold and part size, checked against S3's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    multipart_threshold: u64,
    part_size: u64,
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
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

impl Thresholds {
    pub fn new(multipart_threshold: u64, part_size: u64) -> Result<Self, ThresholdError> {
        if multipart_threshold > MAX_SINGLE_COPY {
            return Err(ThresholdError::ThresholdTooLarge(multipart_threshold));
        }
        if part_size < MIN_PART_SIZE {
            return Err(ThresholdError::PartTooSmall(part_size));
        }
        if part_size > MAX_PART_SIZE {
            return Err(ThresholdError::PartTooLarge(part_size));
        }
        Ok(Thresholds {
            multipart_threshold,
            part_size,
        })
    }

    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    pub fn part_size(&self) -> u64 {
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

/// An object S3 cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the object is {} and S3 objects are at most 5 TiB", format_size(*.0))]
pub struct TooLarge(pub u64);

/// Chooses the method for an object of `size` bytes.
pub fn plan(size: u64, thresholds: &Thresholds) -> Result<Method, TooLarge> {
    if size > MAX_OBJECT_SIZE {
        return Err(TooLarge(size));
    }
    if size <= thresholds.multipart_threshold && size <= MAX_SINGLE_COPY {
        return Ok(Method::Single);
    }
    let part_size = part_size_for(size, thresholds.part_size);
    let parts = (0..size.div_ceil(part_size))
        .map(|i| Part {
            number: i as i32 + 1,
            first: i * part_size,
            last: ((i + 1) * part_size).min(size) - 1,
        })
        .collect();
    Ok(Method::Multipart(parts))
}

/// The preferred part size, raised when needed so that `size` takes at most 10,000 parts.
pub fn part_size_for(size: u64, preferred: u64) -> u64 {
    preferred
        .max(size.div_ceil(MAX_PARTS))
        .clamp(MIN_PART_SIZE, MAX_PART_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(size: u64, thresholds: &Thresholds) -> Vec<Part> {
        match plan(size, thresholds).unwrap() {
            Method::Multipart(parts) => parts,
            Method::Single => panic!("{size} should be multipart"),
        }
    }

    #[test]
    fn at_or_below_the_threshold_is_one_copy() {
        let t = Thresholds::default();
        assert_eq!(plan(0, &t), Ok(Method::Single));
        assert_eq!(plan(DEFAULT_MULTIPART_THRESHOLD, &t), Ok(Method::Single));
        assert!(matches!(
            plan(DEFAULT_MULTIPART_THRESHOLD + 1, &t),
            Ok(Method::Multipart(_))
        ));
    }

    #[test]
    fn the_originals_700_mb_object() {
        let p = parts(700_000_000, &Thresholds::default());
        assert_eq!(p.len(), 42);
        assert_eq!(p[0].range(), "bytes=0-16777215");
        assert_eq!(p[41].last, 700_000_000 - 1);
    }

    #[test]
    fn above_5_gib_is_multipart_whatever_the_threshold() {
        let t = Thresholds::new(MAX_SINGLE_COPY, MIN_PART_SIZE).unwrap();
        assert_eq!(plan(MAX_SINGLE_COPY, &t), Ok(Method::Single));
        assert!(matches!(
            plan(MAX_SINGLE_COPY + 1, &t),
            Ok(Method::Multipart(_))
        ));
    }

    #[test]
    fn a_5_tib_object_takes_at_most_10000_parts() {
        let p = parts(MAX_OBJECT_SIZE, &Thresholds::default());
        assert!(p.len() as u64 <= MAX_PARTS);
        assert!(plan(MAX_OBJECT_SIZE + 1, &Thresholds::default()).is_err());
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            Thresholds::new(0, MIN_PART_SIZE - 1),
            Err(ThresholdError::PartTooSmall(MIN_PART_SIZE - 1))
        );
        assert!(Thresholds::new(0, MAX_PART_SIZE + 1).is_err());
        let err = Thresholds::new(6 * GIB, 8 * MIB).unwrap_err();
        assert!(err.to_string().contains("above 5 GiB"), "{err}");
        assert!(Thresholds::new(0, MIN_PART_SIZE).is_ok());
    }

    proptest! {
        #[test]
        fn parts_tile_the_object_within_s3_limits(
            size in 0u64..=MAX_OBJECT_SIZE,
            threshold in 0u64..=MAX_SINGLE_COPY,
            part_size in MIN_PART_SIZE..=MAX_PART_SIZE,
        ) {
            let t = Thresholds::new(threshold, part_size).unwrap();
            match plan(size, &t).unwrap() {
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
    }
}
