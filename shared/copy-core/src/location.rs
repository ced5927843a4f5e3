//! Where objects are: `s3://bucket/prefix` locations, and the mapping of a source key to its
//! destination key (the destination prefix plus the source key with the source prefix removed).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A bucket and a key prefix (possibly empty), written `s3://bucket/prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Location {
    pub bucket: String,
    pub prefix: String,
}

/// A location that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationError {
    #[error("{0:?} is not an S3 URL: write it as s3://bucket or s3://bucket/prefix")]
    NotS3(String),
    #[error("{0:?} names no bucket: write it as s3://bucket or s3://bucket/prefix")]
    NoBucket(String),
    #[error("{url:?} has an invalid bucket name {bucket:?}: bucket names are 3 to 63 characters of lowercase letters, digits, dots and hyphens")]
    BadBucket { url: String, bucket: String },
    #[error("{0:?} has a prefix longer than 1,024 bytes, which no S3 key can start with")]
    PrefixTooLong(String),
}

/// A source and destination that must not be used together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the source {from} and the destination {to} overlap: a copy would read its own output; use another bucket or prefixes that do not contain each other")]
pub struct Overlap {
    pub from: Location,
    pub to: Location,
}

impl Location {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        Location {
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }

    /// Whether `key` is under this location's prefix.
    pub fn contains(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Whether one location contains the other, so that a copy between them reads its own output.
    pub fn overlaps(&self, other: &Location) -> bool {
        self.bucket == other.bucket
            && (self.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&self.prefix))
    }
}

/// Checks that copying from `source` to `destination` is meaningful.
pub fn check_pair(source: &Location, destination: &Location) -> Result<(), Overlap> {
    if source.overlaps(destination) {
        Err(Overlap {
            from: source.clone(),
            to: destination.clone(),
        })
    } else {
        Ok(())
    }
}

/// The destination key of `key`: `destination.prefix` + `key` without `source.prefix`; `None`
/// when `key` is not under the source prefix. A "folder" marker at the source prefix itself
/// (`photos/`, as the S3 console's "Create folder" makes) maps to the destination prefix, which
/// is the empty string, no key at all, when the destination is a whole bucket: see
/// [`FOLDER_MARKER_SKIPPED`].
pub fn destination_key(source: &Location, destination: &Location, key: &str) -> Option<String> {
    key.strip_prefix(source.prefix.as_str())
        .map(|rest| format!("{}{rest}", destination.prefix))
}

/// A key URL-encoded as a form value (`+` for a space, `%2B` for `+`), as S3 Batch Operations
/// and S3 Inventory write keys.
pub fn form_decoded(encoded: &str) -> Result<String, String> {
    let spaced = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| format!("the key {encoded:?} does not decode to UTF-8"))
}

/// Why a folder marker at the source prefix is not copied to a whole-bucket destination.
pub const FOLDER_MARKER_SKIPPED: &str =
    "a folder marker at the source prefix maps to an empty key in a whole-bucket destination, which no object can have: skipped";

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| LocationError::NotS3(url.to_owned()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LocationError::NoBucket(url.to_owned()));
        }
        if !valid_bucket(bucket) {
            return Err(LocationError::BadBucket {
                url: url.to_owned(),
                bucket: bucket.to_owned(),
            });
        }
        if prefix.len() > 1024 {
            return Err(LocationError::PrefixTooLong(url.to_owned()));
        }
        Ok(Location::new(bucket, prefix))
    }
}

/// S3's bucket naming rules (general purpose buckets): 3–63 of `a-z0-9.-`, starting and ending
/// with a letter or digit.
fn valid_bucket(bucket: &str) -> bool {
    let bytes = bucket.as_bytes();
    (3..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

impl TryFrom<String> for Location {
    type Error = LocationError;
    fn try_from(url: String) -> Result<Self, Self::Error> {
        url.parse()
    }
}

impl From<Location> for String {
    fn from(location: Location) -> String {
        location.to_string()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_buckets_and_prefixes() {
        assert_eq!("s3://b-1".parse(), Ok(Location::new("b-1", "")));
        assert_eq!("s3://b-1/".parse(), Ok(Location::new("b-1", "")));
        assert_eq!(
            "s3://my.bucket/a/b/".parse(),
            Ok(Location::new("my.bucket", "a/b/"))
        );
        assert_eq!("s3://abc/x y".parse(), Ok(Location::new("abc", "x y")));
    }

    #[test]
    fn rejects_what_is_not_an_s3_location() {
        for (url, expected) in [
            ("bucket/prefix", "is not an S3 URL"),
            ("https://bucket/prefix", "is not an S3 URL"),
            ("s3://", "names no bucket"),
            ("s3:///prefix", "names no bucket"),
            ("s3://Upper/x", "invalid bucket name"),
            ("s3://ab", "invalid bucket name"),
            ("s3://-ab", "invalid bucket name"),
            ("s3://a_b", "invalid bucket name"),
        ] {
            let err = url.parse::<Location>().unwrap_err().to_string();
            assert!(err.contains(expected), "{url}: {err}");
        }
        let long = format!("s3://bucket/{}", "k".repeat(1025));
        assert!(matches!(
            long.parse::<Location>(),
            Err(LocationError::PrefixTooLong(_))
        ));
    }

    #[test]
    fn maps_keys_by_prefix() {
        let src = Location::new("src", "photos/");
        let dst = Location::new("dst", "backup/2016/");
        assert_eq!(
            destination_key(&src, &dst, "photos/a/b.jpg").as_deref(),
            Some("backup/2016/a/b.jpg")
        );
        assert_eq!(destination_key(&src, &dst, "videos/a.mp4"), None);
        let whole = Location::new("src", "");
        assert_eq!(
            destination_key(&whole, &dst, "x").as_deref(),
            Some("backup/2016/x")
        );
        // The folder marker at the source prefix: the destination prefix, or an empty key.
        assert_eq!(
            destination_key(&src, &dst, "photos/").as_deref(),
            Some("backup/2016/")
        );
        let bucket = Location::new("dst", "");
        assert_eq!(
            destination_key(&src, &bucket, "photos/").as_deref(),
            Some("")
        );
    }

    #[test]
    fn overlapping_pairs_are_refused() {
        let a = |b: &str, p: &str| Location::new(b, p);
        assert!(check_pair(&a("b", ""), &a("b", "backup/")).is_err());
        assert!(check_pair(&a("b", "x/"), &a("b", "x/")).is_err());
        assert!(check_pair(&a("b", "x/y/"), &a("b", "x/")).is_err());
        assert!(check_pair(&a("b", "x/"), &a("b", "y/")).is_ok());
        assert!(check_pair(&a("b", ""), &a("c", "")).is_ok());
    }

    proptest! {
        #[test]
        fn display_parses_back(bucket in "[a-z0-9][a-z0-9.-]{1,40}[a-z0-9]", prefix in "[ -~]{0,60}") {
            let location = Location::new(bucket, prefix);
            prop_assert_eq!(location.to_string().parse::<Location>(), Ok(location));
        }

        #[test]
        fn mapping_preserves_order(mut keys in proptest::collection::vec("[a-c/]{0,6}", 0..20), dst in "[a-z/]{0,5}") {
            let src = Location::new("src", "p/");
            let dst = Location::new("dst", dst);
            keys.sort();
            let mapped: Vec<String> = keys
                .iter()
                .filter_map(|k| destination_key(&src, &dst, &format!("p/{k}")))
                .collect();
            let mut sorted = mapped.clone();
            sorted.sort();
            prop_assert_eq!(mapped, sorted, "the destination listing order follows the source's");
        }
    }
}
