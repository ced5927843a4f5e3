//! A model of how long S3 takes to copy an object server side (`CopyObject`, `UploadPartCopy`):
//! a fixed overhead per request plus the bytes at a bandwidth per stream. The emulator copies
//! instantly; the latency proxy adds this delay so that copy benchmarks see S3's shape.

use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

const MIB: f64 = 1024.0 * 1024.0;

/// The copy speed model. The default adds nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CopyModel {
    /// Added to every copy request, whatever its size.
    pub overhead: Duration,
    /// Bytes per second of one copy request, in MiB/s; `None` means unlimited.
    pub bandwidth_mib_s: Option<f64>,
}

impl CopyModel {
    /// Whether the model adds anything (and so whether source sizes need looking up).
    pub fn is_enabled(&self) -> bool {
        !self.overhead.is_zero() || self.bandwidth_mib_s.is_some_and(|b| b > 0.0)
    }

    /// The extra time one copy request of `bytes` takes.
    pub fn delay(&self, bytes: u64) -> Duration {
        let transfer = match self.bandwidth_mib_s {
            Some(mib_s) if mib_s > 0.0 => Duration::from_secs_f64(bytes as f64 / (mib_s * MIB)),
            _ => Duration::ZERO,
        };
        self.overhead + transfer
    }
}

/// The number of bytes an `x-amz-copy-source-range` header names (`bytes=first-last`,
/// inclusive), or `None` when it is not such a range.
pub fn range_len(header: &str) -> Option<u64> {
    let (first, last) = header.trim().strip_prefix("bytes=")?.split_once('-')?;
    let (first, last): (u64, u64) = (first.trim().parse().ok()?, last.trim().parse().ok()?);
    (last >= first).then(|| last - first + 1)
}

/// Characters that cannot stand in a URI path. `%` is not among them: the copy source is
/// meant to arrive URL-encoded already, and its escapes are kept.
const NOT_IN_PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// The path-style request target of the object an `x-amz-copy-source` header names
/// (`bucket/key` or `/bucket/key`, optionally with `?versionId=…`), for a `HEAD` that learns
/// its size. `None` when the header names no object.
pub fn source_target(header: &str) -> Option<String> {
    let source = header.trim().trim_start_matches('/');
    let (object, version) = match source.split_once('?') {
        Some((object, query)) => (object, Some(query)),
        None => (source, None),
    };
    let (bucket, key) = object.split_once('/')?;
    if bucket.is_empty() || key.is_empty() {
        return None;
    }
    let mut target = format!("/{}", utf8_percent_encode(object, NOT_IN_PATH));
    if let Some(version) = version.and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("versionId="))
    }) {
        target.push_str("?versionId=");
        target.extend(utf8_percent_encode(version, NOT_IN_PATH));
    }
    Some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_is_overhead_plus_bytes_over_bandwidth() {
        let model = CopyModel {
            overhead: Duration::from_millis(20),
            bandwidth_mib_s: Some(100.0),
        };
        assert_eq!(model.delay(0), Duration::from_millis(20));
        assert_eq!(model.delay(100 * 1024 * 1024), Duration::from_millis(1020));
        assert_eq!(model.delay(1024 * 1024), Duration::from_millis(30));
    }

    #[test]
    fn no_bandwidth_means_only_the_overhead() {
        let model = CopyModel {
            overhead: Duration::from_millis(7),
            bandwidth_mib_s: None,
        };
        assert!(model.is_enabled());
        assert_eq!(model.delay(5 << 30), Duration::from_millis(7));
    }

    #[test]
    fn the_default_model_adds_nothing() {
        let model = CopyModel::default();
        assert!(!model.is_enabled());
        assert_eq!(model.delay(1 << 40), Duration::ZERO);
        let zero_bandwidth = CopyModel {
            overhead: Duration::ZERO,
            bandwidth_mib_s: Some(0.0),
        };
        assert!(!zero_bandwidth.is_enabled());
        assert_eq!(zero_bandwidth.delay(1 << 20), Duration::ZERO);
    }

    #[test]
    fn bandwidth_alone_enables_the_model() {
        let model = CopyModel {
            overhead: Duration::ZERO,
            bandwidth_mib_s: Some(512.0),
        };
        assert!(model.is_enabled());
        assert_eq!(model.delay(256 * 1024 * 1024), Duration::from_millis(500));
    }

    #[test]
    fn ranges_are_inclusive() {
        assert_eq!(range_len("bytes=0-0"), Some(1));
        assert_eq!(range_len("bytes=0-1023"), Some(1024));
        assert_eq!(range_len("bytes=5242880-10485759"), Some(5 * 1024 * 1024));
        assert_eq!(range_len(" bytes=10-19 "), Some(10));
    }

    #[test]
    fn malformed_ranges_are_not_ranges() {
        for header in [
            "",
            "bytes=",
            "bytes=10-",
            "bytes=-10",
            "bytes=20-10",
            "items=0-9",
            "bytes=a-b",
        ] {
            assert_eq!(range_len(header), None, "{header:?}");
        }
    }

    #[test]
    fn copy_sources_become_path_style_targets() {
        assert_eq!(
            source_target("bucket/dir/key.bin").as_deref(),
            Some("/bucket/dir/key.bin")
        );
        assert_eq!(source_target("/bucket/key").as_deref(), Some("/bucket/key"));
        assert_eq!(
            source_target("bucket/a%20b").as_deref(),
            Some("/bucket/a%20b")
        );
        assert_eq!(
            source_target("bucket/a b{c}").as_deref(),
            Some("/bucket/a%20b%7Bc%7D")
        );
        assert_eq!(
            source_target("bucket/key?versionId=3HL4kqtJ").as_deref(),
            Some("/bucket/key?versionId=3HL4kqtJ")
        );
    }

    #[test]
    fn copy_sources_without_an_object_are_refused() {
        for header in ["", "bucket", "bucket/", "/bucket", "/key"] {
            assert_eq!(source_target(header), None, "{header:?}");
        }
    }
}
