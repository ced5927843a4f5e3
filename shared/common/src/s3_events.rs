//! S3's events as EventBridge delivers them (`"source": "aws.s3"`, `detail-type` `Object
//! Created` or `Object Deleted`), read from a copy-queue record for continuous backup
//! (docs/copy.md). Unlike S3's own event notifications, EventBridge gives the key as it is,
//! not URL-encoded.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use fanout_copy_core::mirror::{Change, ObjectEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The part of an S3 event's `detail` that names the object.
#[derive(Debug, Deserialize, Serialize)]
struct Detail {
    bucket: Bucket,
    object: Object,
}

#[derive(Debug, Deserialize, Serialize)]
struct Bucket {
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
struct Object {
    key: String,
}

/// Reads `body` as an S3 event from EventBridge: `None` when it is not an EventBridge event
/// from S3 at all (a copy job), else the event, or why it cannot be applied.
pub fn read(body: &str) -> Option<Result<ObjectEvent, String>> {
    let value: Value = serde_json::from_str(body).ok()?;
    if value.get("source")?.as_str()? != "aws.s3" || value.get("detail-type").is_none() {
        return None;
    }
    Some(object_event(value))
}

fn object_event(value: Value) -> Result<ObjectEvent, String> {
    let event: EventBridgeEvent<Detail> = serde_json::from_value(value)
        .map_err(|e| format!("the S3 event from EventBridge cannot be read: {e}"))?;
    let change = match event.detail_type.as_str() {
        "Object Created" => Change::Created,
        "Object Deleted" => Change::Deleted,
        other => {
            return Err(format!(
                "S3's {other:?} events are not applied: the rule should send only Object Created and Object Deleted"
            ))
        }
    };
    let (bucket, key) = (event.detail.bucket.name, event.detail.object.key);
    if bucket.is_empty() || key.is_empty() {
        return Err("the S3 event names no bucket or no key".into());
    }
    Ok(ObjectEvent {
        id: event.id.unwrap_or_default(),
        change,
        bucket,
        key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(detail_type: &str, key: &str) -> String {
        json!({
            "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": detail_type, "source": "aws.s3", "account": "123456789012",
            "time": "2021-11-12T00:00:00Z", "region": "us-east-1",
            "resources": ["arn:aws:s3:::photos-source"],
            "detail": {"version": "0", "bucket": {"name": "photos-source"},
                       "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                                  "sequencer": "00617F08299329D189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                       "reason": "PutObject"}
        })
        .to_string()
    }

    #[test]
    fn created_and_deleted_events_name_their_object_as_it_is() {
        let created = read(&event("Object Created", "photos/a b+c.jpg"))
            .unwrap()
            .unwrap();
        assert_eq!(
            created,
            ObjectEvent {
                id: "17793124-05d4-b198-2fde-7ededc63b103".into(),
                change: Change::Created,
                bucket: "photos-source".into(),
                key: "photos/a b+c.jpg".into(),
            }
        );
        let deleted = read(&event("Object Deleted", "photos/x")).unwrap().unwrap();
        assert_eq!(deleted.change, Change::Deleted);
    }

    #[test]
    fn a_copy_job_is_not_an_event_and_a_bad_event_says_why() {
        assert!(read(r#"{"schema_version":1,"run_id":"r"}"#).is_none());
        assert!(read("not json").is_none());
        assert!(read(r#"{"source":"aws.ec2","detail-type":"x"}"#).is_none());
        let restore = read(&event("Object Restore Completed", "k")).unwrap();
        assert!(restore.unwrap_err().contains("not applied"));
        let no_detail = read(r#"{"source":"aws.s3","detail-type":"Object Created"}"#).unwrap();
        assert!(no_detail.unwrap_err().contains("cannot be read"));
        let empty = read(&event("Object Created", "")).unwrap();
        assert!(empty.unwrap_err().contains("no key"));
    }
}
