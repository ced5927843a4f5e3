//! The part layout of a source uploaded in parts, learned from HEADs of its parts
//! (`partNumber`: a part's size and the number of parts), so that a copy made part for part has
//! the same part bytes, and so the same ETag, as its source, and a later run skips it at
//! listing.
//!
//! Every part is asked for: most tools upload equal parts and a shorter last one, but the first
//! and the last part cannot tell that layout from another of the same total (6, 5, 7 and 1 MiB
//! look like 6, 6, 6 and 1 MiB), and a wrong guess costs the ETag. A HEAD costs a
//! twenty-fifth of an UploadPartCopy, and it is only paid for an object being copied.

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::decide::parts_in_etag;
use crate::plan::{check_layout, MAX_PARTS, MIN_PART_SIZE};
use crate::store::{ObjectCopier, StoreError};

/// HEADs of parts in flight at once while a layout is learned.
pub const PART_HEADS_IN_FLIGHT: usize = 32;

/// The sizes of the parts the source object (`size` bytes, ETag `etag`) was uploaded in.
/// `None` when it was not uploaded in parts, or when its layout cannot be learned or copied part
/// for part: the copier then plans parts of its own, and the copy's ETag differs from the
/// source's. A failure that may pass (throttling, a 5xx) is returned, for the job to be tried
/// again.
pub async fn source_layout<S: ObjectCopier>(
    store: &S,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
) -> Result<Option<Vec<u64>>, StoreError> {
    let Some(count) = parts_in_etag(etag) else {
        return Ok(None);
    };
    let sizes = match learn(store, bucket, key, size, etag, count).await {
        Ok(Some(sizes)) => sizes,
        Ok(None) => {
            tracing::warn!(%bucket, %key, %etag, "the source's ETag names parts its HEAD does not show; copying with parts of our own");
            return Ok(None);
        }
        Err(err) if err.transient() => return Err(err),
        Err(err) => {
            tracing::warn!(%bucket, %key, error = %err, "the source's part layout could not be learned; copying with parts of our own");
            return Ok(None);
        }
    };
    match check_layout(&sizes, size) {
        Ok(()) => Ok(Some(sizes)),
        Err(reason) => {
            tracing::warn!(%bucket, %key, %reason, "the source's part layout cannot be copied part for part; copying with parts of our own");
            Ok(None)
        }
    }
}

/// The part sizes, from a HEAD of each part; `None` when the store says the object is not in
/// parts.
async fn learn<S: ObjectCopier>(
    store: &S,
    bucket: &str,
    key: &str,
    size: u64,
    etag: &str,
    etag_parts: u32,
) -> Result<Option<Vec<u64>>, StoreError> {
    let first = store.head_part(bucket, key, etag, 1).await?;
    let Some(count) = first.parts_count else {
        return Ok(None);
    };
    if count != etag_parts || u64::from(count) > MAX_PARTS || count == 0 {
        return Ok(None);
    }
    // Parts of more than the object's size cannot be; asking for them would be wasted.
    if u64::from(count - 1) * MIN_PART_SIZE >= size.max(1) && count > 1 {
        return Ok(None);
    }
    let rest: Vec<u64> = stream::iter(2..=count as i32)
        .map(|number| async move {
            store
                .head_part(bucket, key, etag, number)
                .await
                .map(|part| part.size)
        })
        .buffered(PART_HEADS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(Some(std::iter::once(first.size).chain(rest).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::{MemoryStore, Object};
    use crate::size::MIB;
    use crate::store::ErrorKind;

    fn heads(store: &MemoryStore) -> usize {
        (store.calls().iter())
            .filter(|c| c.starts_with("HeadObjectPart"))
            .count()
    }

    async fn layout_of(store: &MemoryStore, object: &Object) -> Option<Vec<u64>> {
        let size = object.data.len() as u64;
        source_layout(store, "src", "k", size, &object.etag)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_part_is_asked_for() {
        for sizes in [
            vec![5 * MIB, 5 * MIB, 5 * MIB, 1000],
            // First and last as equal parts would have them: only the middle tells.
            vec![6 * MIB, 5 * MIB, 7 * MIB, MIB],
            vec![6 * MIB, 6 * MIB, 5 * MIB, 7 * MIB],
        ] {
            let store = MemoryStore::new();
            let total: u64 = sizes.iter().sum();
            let object = Object::multipart(vec![3; total as usize], &sizes);
            store.put("src", "k", object.clone());
            assert_eq!(layout_of(&store, &object).await, Some(sizes));
            assert_eq!(heads(&store), 4);
        }
    }

    #[tokio::test]
    async fn a_single_part_object_needs_no_head_and_one_part_is_one_part() {
        let store = MemoryStore::new();
        let object = Object::new(vec![1; 100]);
        store.put("src", "k", object.clone());
        assert_eq!(layout_of(&store, &object).await, None);
        assert_eq!(heads(&store), 0);
        let one = Object::multipart(vec![1; 100], &[100]);
        store.put("src", "k", one.clone());
        assert_eq!(layout_of(&store, &one).await, Some(vec![100]));
    }

    #[tokio::test]
    async fn a_layout_s3_cannot_copy_or_a_refused_head_falls_back_and_a_throttle_is_returned() {
        let store = MemoryStore::new();
        // Parts below 5 MiB (possible for an emulator, not for S3): our own parts.
        let object = Object::multipart(vec![2; 300], &[100, 100, 100]);
        store.put("src", "k", object.clone());
        assert_eq!(layout_of(&store, &object).await, None);
        let object = Object::multipart(vec![2; 11 * MIB as usize], &[6 * MIB, 5 * MIB]);
        store.put("src", "k", object.clone());
        store.fail("HeadObjectPart", 1, ErrorKind::Permanent);
        assert_eq!(layout_of(&store, &object).await, None);
        store.fail("HeadObjectPart", 1, ErrorKind::Transient);
        let err = source_layout(&store, "src", "k", 11 * MIB, &object.etag)
            .await
            .unwrap_err();
        assert!(err.transient(), "{err}");
    }
}
