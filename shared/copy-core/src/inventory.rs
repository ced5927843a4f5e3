//! S3 Inventory reports as a source (docs/copy.md, "Inventory manifests"): the manifest
//! (`manifest.json`), its gzip CSV data files, and the rows that are current objects.
//!
//! A report lists a bucket in data files of rows whose columns the manifest's `fileSchema`
//! names. A versioned report also lists older versions (`IsLatest` false) and delete markers
//! (`IsDeleteMarker` true); only current objects are copied. Keys are URL-encoded as form
//! values. Rows are read in the file's order, so a position in a file is a row number, which
//! is what a data file's cursor records.

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::decide::Listed;
use crate::location::{form_decoded, Location};
use crate::planner::parse_rfc3339;

/// The only data format read: Apache ORC and Parquet reports are refused.
pub const CSV: &str = "CSV";

/// The digits of a row cursor, so that cursors compare as the rows they count.
const CURSOR_DIGITS: usize = 12;

/// A manifest or data file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("the inventory manifest {manifest} is not an S3 Inventory manifest.json: {detail}")]
    BadManifest { manifest: String, detail: String },
    #[error("the inventory {manifest} is in {format} format; fanout reads CSV inventories only: set the inventory configuration's output format to CSV")]
    Unsupported { manifest: String, format: String },
    #[error("the inventory's fileSchema {schema:?} has no {column} column: {why}")]
    MissingColumn {
        schema: String,
        column: &'static str,
        why: &'static str,
    },
    #[error("the inventory data file {file} has MD5 {actual}, and its manifest says {expected}: the file is damaged or was replaced; run the inventory again")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("the inventory data file {file} cannot be read at row {row}: {detail}")]
    BadRow {
        file: String,
        row: u64,
        detail: String,
    },
}

/// One data file of a report, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    pub key: String,
    pub size: u64,
    #[serde(rename = "MD5checksum", default)]
    pub md5: String,
}

/// A report's manifest: the bucket it lists, the columns of its rows, and its data files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub source_bucket: String,
    /// `fileSchema`, as written: each data file is read with it.
    pub schema: String,
    pub files: Vec<DataFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestJson {
    source_bucket: String,
    file_format: String,
    file_schema: String,
    files: Vec<DataFile>,
}

impl Manifest {
    /// Reads `manifest.json` (named by `manifest`, for messages), refusing any format but CSV
    /// and a schema without the columns a copy needs.
    pub fn parse(manifest: &Location, json: &[u8]) -> Result<Manifest, InventoryError> {
        let raw: ManifestJson =
            serde_json::from_slice(json).map_err(|e| InventoryError::BadManifest {
                manifest: manifest.to_string(),
                detail: e.to_string(),
            })?;
        if !raw.file_format.eq_ignore_ascii_case(CSV) {
            return Err(InventoryError::Unsupported {
                manifest: manifest.to_string(),
                format: raw.file_format,
            });
        }
        Columns::of(&raw.file_schema)?;
        Ok(Manifest {
            source_bucket: raw.source_bucket,
            schema: raw.file_schema,
            files: raw.files,
        })
    }
}

/// Where the columns a copy reads are in a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    count: usize,
    key: usize,
    size: usize,
    etag: usize,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
    last_modified: Option<usize>,
    storage_class: Option<usize>,
}

impl Columns {
    fn of(schema: &str) -> Result<Columns, InventoryError> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |column: &'static str, why: &'static str| {
            find(column).ok_or_else(|| InventoryError::MissingColumn {
                schema: schema.to_owned(),
                column,
                why,
            })
        };
        const ADD: &str = "add the Size and ETag fields to the inventory configuration: a copy is made only of the content the inventory listed";
        Ok(Columns {
            count: names.len(),
            key: need(
                "Key",
                "every S3 Inventory report has one; is this a manifest?",
            )?,
            size: need("Size", ADD)?,
            etag: need("ETag", ADD)?,
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
            last_modified: find("LastModifiedDate"),
            storage_class: find("StorageClass"),
        })
    }
}

/// A row of a data file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row {
    /// A current object.
    Current(Listed),
    /// An older version or a delete marker: nothing to copy.
    NotCurrent,
}

/// A data file's cursor after `rows` rows.
pub fn cursor(rows: u64) -> String {
    format!("{rows:0width$}", width = CURSOR_DIGITS)
}

/// The rows a cursor counts; `None` when it is not one.
pub fn rows_of(cursor: &str) -> Option<u64> {
    (cursor.len() == CURSOR_DIGITS)
        .then(|| cursor.parse().ok())
        .flatten()
}

/// Checks a data file's bytes against the manifest's MD5 (when it gives one).
pub fn check_md5(file: &str, bytes: &[u8], expected: Option<&str>) -> Result<(), InventoryError> {
    use md5::Digest;
    let Some(expected) = expected.filter(|md5| !md5.is_empty()) else {
        return Ok(());
    };
    let actual = hex::encode(md5::Md5::digest(bytes));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(InventoryError::Checksum {
            file: file.to_owned(),
            expected: expected.to_owned(),
            actual,
        })
    }
}

/// The rows of one gzip CSV data file, in order, numbered from 0.
pub struct Rows<R: Read> {
    file: String,
    columns: Columns,
    records: csv::StringRecordsIntoIter<flate2::read::MultiGzDecoder<R>>,
    /// Rows read so far.
    read: u64,
}

impl<R: Read> Rows<R> {
    /// Reads `gzip` (the data file `file`) with the manifest's `schema`.
    pub fn new(file: &str, schema: &str, gzip: R) -> Result<Rows<R>, InventoryError> {
        let records = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(flate2::read::MultiGzDecoder::new(gzip))
            .into_records();
        Ok(Rows {
            file: file.to_owned(),
            columns: Columns::of(schema)?,
            records,
            read: 0,
        })
    }

    /// Rows read so far: the cursor after the last one returned.
    pub fn read(&self) -> u64 {
        self.read
    }

    fn bad(&self, detail: impl Into<String>) -> InventoryError {
        InventoryError::BadRow {
            file: self.file.clone(),
            row: self.read,
            detail: detail.into(),
        }
    }

    fn row(&self, record: &csv::StringRecord) -> Result<Row, InventoryError> {
        let columns = &self.columns;
        if record.len() != columns.count {
            return Err(self.bad(format!(
                "{} columns where the fileSchema names {}",
                record.len(),
                columns.count
            )));
        }
        let field = |i: usize| record.get(i).unwrap_or_default();
        let flag = |column: Option<usize>, name: &str| match column.map(field) {
            None | Some("") => Ok(None),
            Some(text) if text.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(text) if text.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(text) => Err(self.bad(format!("{name} is {text:?}, not true or false"))),
        };
        let latest = flag(columns.is_latest, "IsLatest")?.unwrap_or(true);
        let delete_marker = flag(columns.is_delete_marker, "IsDeleteMarker")?.unwrap_or(false);
        if !latest || delete_marker {
            return Ok(Row::NotCurrent);
        }
        let key = form_decoded(field(columns.key)).map_err(|e| self.bad(e))?;
        if key.is_empty() {
            return Err(self.bad("the Key is empty"));
        }
        let size = field(columns.size);
        let size = size
            .parse()
            .map_err(|_| self.bad(format!("the Size of {key:?} is {size:?}, not a byte count")))?;
        let etag = field(columns.etag).trim_matches('"');
        if etag.is_empty() {
            return Err(self.bad(format!("{key:?} has no ETag")));
        }
        let last_modified = match columns.last_modified.map(field).filter(|t| !t.is_empty()) {
            Some(time) => Some(parse_rfc3339(time).map_err(|e| self.bad(e.to_string()))?),
            None => None,
        };
        let archived = matches!(
            columns.storage_class.map(field),
            Some("GLACIER" | "DEEP_ARCHIVE")
        );
        Ok(Row::Current(Listed {
            key,
            size,
            etag: format!("\"{etag}\""),
            last_modified,
            archived,
        }))
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<Row, InventoryError>;

    fn next(&mut self) -> Option<Self::Item> {
        let record = match self.records.next()? {
            Ok(record) => record,
            Err(e) => return Some(Err(self.bad(e.to_string()))),
        };
        let row = self.row(&record);
        self.read += 1;
        Some(row)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    pub const SCHEMA: &str = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag, StorageClass, IsMultipartUploaded";

    /// A gzip data file of `rows` (each a CSV line's fields, quoted as S3 writes them).
    pub fn gzip(rows: &[Vec<&str>]) -> Vec<u8> {
        let mut csv = String::new();
        for row in rows {
            let quoted: Vec<String> = row.iter().map(|f| format!("\"{f}\"")).collect();
            csv.push_str(&quoted.join(","));
            csv.push('\n');
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(csv.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    fn manifest(format: &str, schema: &str) -> Vec<u8> {
        serde_json::json!({
            "sourceBucket": "src",
            "destinationBucket": "arn:aws:s3:::inventories",
            "version": "2016-11-30",
            "creationTimestamp": "1514944800000",
            "fileFormat": format,
            "fileSchema": schema,
            "files": [{"key": "src/daily/data/a.csv.gz", "size": 100, "MD5checksum": "00"}]
        })
        .to_string()
        .into_bytes()
    }

    fn location() -> Location {
        "s3://inventories/src/daily/2026-11-30T01-00Z/manifest.json"
            .parse()
            .unwrap()
    }

    #[test]
    fn a_csv_manifest_is_read_and_the_other_formats_are_refused() {
        let read = Manifest::parse(&location(), &manifest("CSV", SCHEMA)).unwrap();
        assert_eq!(read.source_bucket, "src");
        assert_eq!(read.files[0].key, "src/daily/data/a.csv.gz");
        assert_eq!(read.files[0].md5, "00");
        for format in ["Parquet", "ORC"] {
            let err = Manifest::parse(&location(), &manifest(format, "struct<bucket:string>"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(format) && err.contains("CSV"), "{err}");
        }
        let err = Manifest::parse(&location(), b"{\"files\": []}").unwrap_err();
        assert!(matches!(err, InventoryError::BadManifest { .. }), "{err}");
        let err = Manifest::parse(&location(), &manifest("CSV", "Bucket, Key, Size"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("ETag") && err.contains("inventory configuration"),
            "{err}"
        );
    }

    #[test]
    fn only_current_objects_are_rows_to_copy_with_keys_decoded() {
        let data = gzip(&[
            vec![
                "src",
                "a+b%2Bc.txt",
                "v2",
                "true",
                "false",
                "5",
                "2026-11-29T10:00:00.000Z",
                "0123abcd",
                "STANDARD",
                "false",
            ],
            vec![
                "src",
                "a+b%2Bc.txt",
                "v1",
                "false",
                "false",
                "4",
                "2026-11-28T10:00:00.000Z",
                "99",
                "STANDARD",
                "false",
            ],
            vec![
                "src",
                "gone.txt",
                "v3",
                "true",
                "true",
                "",
                "2026-11-29T10:00:00.000Z",
                "",
                "",
                "",
            ],
            vec![
                "src",
                "cold.bin",
                "v4",
                "true",
                "false",
                "7",
                "2026-11-29T10:00:00.000Z",
                "77-2",
                "DEEP_ARCHIVE",
                "true",
            ],
        ]);
        let rows: Vec<Row> = Rows::new("a.csv.gz", SCHEMA, data.as_slice())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let Row::Current(first) = &rows[0] else {
            panic!("{rows:?}")
        };
        assert_eq!((first.key.as_str(), first.size), ("a b+c.txt", 5));
        assert_eq!(first.etag, "\"0123abcd\"");
        assert_eq!(first.last_modified, Some(1_795_946_400));
        assert_eq!(
            (rows[1].clone(), rows[2].clone()),
            (Row::NotCurrent, Row::NotCurrent)
        );
        assert!(matches!(&rows[3], Row::Current(cold) if cold.archived));
    }

    #[test]
    fn a_current_objects_report_needs_no_version_columns() {
        let data = gzip(&[vec!["src", "k", "3", "e"]]);
        let mut rows = Rows::new("f", "Bucket, Key, Size, ETag", data.as_slice()).unwrap();
        assert!(matches!(rows.next(), Some(Ok(Row::Current(listed))) if listed.size == 3));
        assert_eq!(rows.read(), 1);
        assert!(rows.next().is_none());
    }

    #[test]
    fn a_bad_row_names_its_file_row_and_fault() {
        let good = [
            "src", "ok", "x", "true", "false", "1", "", "e", "STANDARD", "false",
        ];
        // The good row with one field changed, and what the error names.
        let cases = [
            (5, "five", "Size"),
            (3, "yes", "IsLatest"),
            (7, "", "ETag"),
            (1, "", "Key"),
            (6, "yesterday", "RFC 3339"),
            (1, "%FF", "UTF-8"),
        ];
        let mut rows: Vec<(Vec<&str>, &str)> = (cases.iter())
            .map(|&(field, value, fault)| {
                let mut row = good.to_vec();
                row[field] = value;
                (row, fault)
            })
            .collect();
        rows.push((vec!["src", "k"], "columns"));
        for (row, fault) in rows {
            let data = gzip(&[good.to_vec(), row]);
            let mut rows = Rows::new("data/f.csv.gz", SCHEMA, data.as_slice()).unwrap();
            assert!(rows.next().unwrap().is_ok());
            let err = rows.next().unwrap().unwrap_err().to_string();
            assert!(
                err.contains("data/f.csv.gz") && err.contains("row 1") && err.contains(fault),
                "{fault}: {err}"
            );
        }
        let err = Rows::new("f", SCHEMA, b"not gzip".as_slice())
            .unwrap()
            .next()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("row 0"), "{err}");
    }

    #[test]
    fn cursors_count_rows_and_compare_as_they_do() {
        assert_eq!(cursor(0), "000000000000");
        assert!(cursor(999) < cursor(1000));
        assert_eq!(rows_of(&cursor(2500)), Some(2500));
        assert_eq!(rows_of("photos/a.jpg"), None);
        assert_eq!(rows_of("12"), None);
    }

    #[test]
    fn the_md5_of_a_data_file_is_checked_when_the_manifest_gives_it() {
        let bytes = b"data";
        let md5 = "8d777f385d3dfec8815d20f7496026dc";
        assert!(check_md5("f", bytes, Some(md5)).is_ok());
        assert!(check_md5("f", bytes, None).is_ok());
        let err = check_md5("f", b"other", Some(md5)).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
