//! S3 Inventory reports as S3 writes them, for tests: gzip CSV data files with every field
//! quoted and keys URL-encoded as form values, and the `manifest.json` that lists them with
//! their MD5s and the `fileSchema` of a versioned report with every optional field.

use std::io::Write;

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::put_object::PutObjectError;
use aws_sdk_s3::primitives::ByteStream;
use md5::Digest;

/// The columns of a versioned CSV report with every optional field, in S3's order.
pub const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded, ReplicationStatus, EncryptionStatus, ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus, IntelligentTieringAccessTier, BucketKeyStatus, ChecksumAlgorithm, ObjectAccessControlList, ObjectOwner";

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub is_delete_marker: bool,
    /// `None` for a delete marker.
    pub size: Option<u64>,
    /// As S3 lists it (quoted); written without the quotes, as reports have it.
    pub etag: String,
}

impl Row {
    /// The current version of an object.
    pub fn current(key: &str, size: u64, etag: &str) -> Row {
        Row {
            key: key.to_owned(),
            version_id: "v-current".into(),
            is_latest: true,
            is_delete_marker: false,
            size: Some(size),
            etag: etag.to_owned(),
        }
    }

    /// An older version of an object.
    pub fn older(key: &str, size: u64) -> Row {
        Row {
            version_id: "v-older".into(),
            is_latest: false,
            ..Row::current(key, size, "\"0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld00\"")
        }
    }

    /// The delete marker that is the current version of a deleted object.
    pub fn delete_marker(key: &str) -> Row {
        Row {
            version_id: "v-marker".into(),
            is_delete_marker: true,
            size: None,
            etag: String::new(),
            ..Row::current(key, 0, "")
        }
    }

    fn csv_line(&self, bucket: &str) -> String {
        let key: String = form_urlencoded(&self.key);
        let size = self.size.map(|s| s.to_string()).unwrap_or_default();
        let etag = self.etag.trim_matches('"');
        let fields = [
            bucket,
            &key,
            &self.version_id,
            if self.is_latest { "true" } else { "false" },
            if self.is_delete_marker {
                "true"
            } else {
                "false"
            },
            &size,
            "2026-11-29T23:10:07.000Z",
            etag,
            if self.is_delete_marker {
                ""
            } else {
                "STANDARD"
            },
            "false",
            "",
            "SSE-S3",
            "",
            "",
            "",
            "",
            "DISABLED",
            "",
            "",
            "123456789012",
        ];
        let quoted: Vec<String> = fields.iter().map(|f| format!("\"{f}\"")).collect();
        quoted.join(",") + "\n"
    }
}

/// A key as a form value: `+` for a space, everything but unreserved characters escaped.
fn form_urlencoded(key: &str) -> String {
    serde_urlencoded::to_string([("k", key)]).unwrap()[2..].to_owned()
}

/// A report object that could not be written: its key, and S3's error.
pub type PutError = (String, SdkError<PutObjectError>);

/// Writes a report of `source_bucket` into `bucket` under `prefix`: `rows` split over `files`
/// gzip data files, and `<prefix>/manifest.json`; the manifest's key.
pub async fn put_report(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    source_bucket: &str,
    rows: &[Row],
    files: usize,
) -> Result<String, PutError> {
    let per_file = rows.len().div_ceil(files.max(1)).max(1);
    let mut listed = Vec::new();
    for (i, chunk) in rows.chunks(per_file).enumerate() {
        let csv: String = chunk
            .iter()
            .map(|row| row.csv_line(source_bucket))
            .collect();
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(csv.as_bytes()).unwrap();
        let data = gzip.finish().unwrap();
        let key = format!("{prefix}/data/{i:04}-5c1b2a3e.csv.gz");
        listed.push(serde_json::json!({
            "key": key,
            "size": data.len(),
            "MD5checksum": hex::encode(md5::Md5::digest(&data)),
        }));
        put(client, bucket, &key, data).await?;
    }
    let manifest = serde_json::json!({
        "sourceBucket": source_bucket,
        "destinationBucket": format!("arn:aws:s3:::{bucket}"),
        "version": "2016-11-30",
        "creationTimestamp": "1764464400000",
        "fileFormat": "CSV",
        "fileSchema": SCHEMA,
        "files": listed,
    });
    let key = format!("{prefix}/manifest.json");
    put(client, bucket, &key, manifest.to_string().into_bytes()).await?;
    Ok(key)
}

async fn put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
) -> Result<(), PutError> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .map_err(|e| (key.to_owned(), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_as_form_values() {
        assert_eq!(
            form_urlencoded("photos/a b+c é.jpg"),
            "photos%2Fa+b%2Bc+%C3%A9.jpg"
        );
        let line = Row::delete_marker("gone").csv_line("src");
        assert!(
            line.starts_with("\"src\",\"gone\",\"v-marker\",\"true\",\"true\",\"\","),
            "{line}"
        );
        assert_eq!(line.matches("\",\"").count() + 1, SCHEMA.split(',').count());
    }
}
