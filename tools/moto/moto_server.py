#!/usr/bin/env python3
"""moto server for the tests, the benchmarks and the local stack, with DynamoDB's requests
served one at a time.

moto 5 serves each request in a thread of its own, and its TransactWriteItems iterates over a
table's items while other requests insert into it: two transactions at once fail with a 500
("dictionary changed size during iteration"), which DynamoDB never does. slack-counter commits
every chunk of a message's words in a transaction of its own, all at once, so the emulator must
take them one after another, as a single DynamoDB partition would. Nothing else changes: S3,
SNS, SQS (and their long polls) are still served concurrently.

moto's TransactWriteItems also takes a deep copy of the whole table for every item of the
transaction, to restore it if the transaction is cancelled: 100 copies of a table of thousands
of words per transaction, gigabytes for one long Slack message, and tens of milliseconds per
transaction once a load run has written a few thousand claims. Here a transaction keeps an undo
log instead: the previous state of each item it writes, put back if it is cancelled. That is
the same state as the copy held, since nothing else runs meanwhile.

moto's ListMultipartUploads says every upload was initiated on 2010-11-10T20:48:33Z; S3 says
when each was. The launcher notes when each upload is created and answers that.

moto's ListParts answers with the root element `ListPartsResponse`; S3 (and so the AWS SDK for
Rust, which refuses anything else) says `ListPartsResult`. The launcher renames it.

A HEAD with `partNumber` of an object uploaded in parts answers, in S3, the part's size
(Content-Length), the number of parts (`x-amz-mp-parts-count`) and the whole object's ETag, and
`If-Match` is compared with that ETag; a part number past the last is refused (416). moto
answers the part's own ETag, compares `If-Match` with it (so a HEAD that names the object's ETag
fails with 412), and fails with a 500 past the last part. The launcher answers as S3 does.

moto's ReceiveMessage checks each message it looks at against the queue's retention period by
computing every attribute of the queue, which counts its messages: a receive from a queue of
thousands of messages takes seconds; every SendMessage computes them too. The launcher reads
the retention period alone, and counts messages with one reading of the clock, not two for each.

Arguments are moto_server's (`-H 127.0.0.1 -p PORT`).
"""

import copy
import datetime
import re
import threading

import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.responses import DynamoHandler
from moto.core.utils import unix_time, unix_time_millis
from moto.s3.models import FakeMultipart
from moto.s3.responses import S3Response
from moto.sqs.models import Queue, SQSBackend
from moto.server import main
from werkzeug.datastructures import Headers

_DYNAMODB = threading.Lock()
_call_action = DynamoHandler.call_action


def _serialized_call_action(self):
    with _DYNAMODB:
        return _call_action(self)


class _UndoLog:
    """The items a transaction has written, as they were before it wrote them."""

    def __init__(self):
        self.entries = None  # None outside a transaction

    def remember(self, table, hash_key, range_key):
        if self.entries is None:
            return
        place = (id(table), hash_key, range_key)
        if any(entry[0] == place for entry in self.entries):
            return
        before = table.get_item(hash_key, range_key)
        self.entries.append((place, table, hash_key, range_key, copy.deepcopy(before)))

    def undo(self):
        for _, table, hash_key, range_key, before in reversed(self.entries):
            if range_key is None:
                if before is None:
                    table.items.pop(hash_key, None)
                else:
                    table.items[hash_key] = before
            elif before is None:
                table.items[hash_key].pop(range_key, None)
            else:
                table.items[hash_key][range_key] = before


_undo = _UndoLog()


class _NoTableCopies:
    """The `copy` module as moto's DynamoDB models see it: inside a transaction, the table
    "backup" is the live table (moto's rollback then puts back the same object), and the undo
    log restores what changed."""

    def deepcopy(self, value, memo=None):
        if _undo.entries is not None and isinstance(value, dynamodb_models.Table):
            return value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name):
        return getattr(copy, name)


_backend = dynamodb_models.DynamoDBBackend
_transact_write_items = _backend.transact_write_items


def _transact_write_items_with_undo(self, transact_items):
    _undo.entries = []
    try:
        return _transact_write_items(self, transact_items)
    except BaseException:
        _undo.undo()
        raise
    finally:
        _undo.entries = None


def _remembering(write, keys_of):
    def wrapper(self, table_name, attrs, *args, **kwargs):
        if _undo.entries is not None:
            try:
                table = self.get_table(table_name)
                hash_key, range_key = self.get_keys_value(table, keys_of(table, attrs))
            except Exception:
                pass  # the write fails the same way, and writes nothing
            else:
                _undo.remember(table, hash_key, range_key)
        return write(self, table_name, attrs, *args, **kwargs)

    return wrapper


def _item_keys(table, item):
    names = [table.hash_key_attr] + ([table.range_key_attr] if table.has_range_key else [])
    return {name: item[name] for name in names if name in item}


DynamoHandler.call_action = _serialized_call_action
dynamodb_models.copy = _NoTableCopies()
_backend.transact_write_items = _transact_write_items_with_undo
_backend.put_item = _remembering(_backend.put_item, _item_keys)
_backend.update_item = _remembering(_backend.update_item, lambda table, key: key)
_backend.delete_item = _remembering(_backend.delete_item, lambda table, key: key)

_list_parts = S3Response.list_parts


def _list_parts_as_s3_names_it(self):
    status, headers, body = _list_parts(self)
    if isinstance(body, bytes):
        body = body.replace(b"ListPartsResponse", b"ListPartsResult")
    elif isinstance(body, str):
        body = body.replace("ListPartsResponse", "ListPartsResult")
    return status, headers, body


S3Response.list_parts = _list_parts_as_s3_names_it

_head_object = S3Response.head_object


def _head_object_part_as_s3_does(self, bucket_name, query, key_name, headers):
    number = query.get("partNumber", [None])[0]
    version_id = query.get("versionId", [None])[0]
    whole = None
    if number is not None:
        try:
            whole = self.backend.head_object(bucket_name, key_name, version_id)
        except Exception:
            whole = None  # moto's own HEAD answers as it does
    if whole is None or not getattr(whole, "multipart", None):
        return _head_object(self, bucket_name, query, key_name, headers)
    try:
        number = int(number)
    except ValueError:
        return 400, {}, ""
    count = len(whole.multipart.partlist)
    if number < 1 or number > count:
        return 416, {}, ""
    if_match = headers.get("If-Match")
    if if_match is not None and if_match.strip('"') != whole.etag.strip('"'):
        return 412, {"ETag": whole.etag}, ""
    passed_on = Headers([(name, value) for name, value in headers.items() if name.lower() != "if-match"])
    status, answer, body = _head_object(self, bucket_name, query, key_name, passed_on)
    if status == 200:
        answer["ETag"] = whole.etag
        answer["x-amz-mp-parts-count"] = str(count)
        answer.pop("etag", None)
    return status, answer, body


S3Response.head_object = _head_object_part_as_s3_does


def _within_retention_period(self, queue_name, message):
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > unix_time()


SQSBackend.is_message_valid_based_on_retention_period = _within_retention_period


def _visible_messages(queue):
    now = unix_time_millis()
    return [m for m in queue._messages if now > m.visible_at and now >= m.delayed_until]


def _delayed_count(queue):
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now < m.delayed_until)


def _not_visible_count(queue):
    now = unix_time_millis()
    return sum(1 for m in queue._messages if now <= m.visible_at)


# One clock reading per count instead of two per message.
Queue.messages = property(_visible_messages)
Queue.approximate_number_of_messages_delayed = property(_delayed_count)
Queue.approximate_number_of_messages_not_visible = property(_not_visible_count)

# When each multipart upload was created, by upload id.
_INITIATED = {}
_multipart_init = FakeMultipart.__init__


def _multipart_init_noting_when(self, *args, **kwargs):
    _multipart_init(self, *args, **kwargs)
    now = datetime.datetime.now(datetime.timezone.utc)
    _INITIATED[self.id] = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


FakeMultipart.__init__ = _multipart_init_noting_when

_list_multipart_uploads = S3Response.list_multipart_uploads
_UPLOAD = re.compile(r"<Upload>.*?</Upload>", re.S)


def _upload_with_its_time(match):
    upload = match.group(0)
    upload_id = re.search(r"<UploadId>(.*?)</UploadId>", upload)
    when = upload_id and _INITIATED.get(upload_id.group(1))
    if not when:
        return upload
    return re.sub(r"<Initiated>.*?</Initiated>", f"<Initiated>{when}</Initiated>", upload)


def _list_multipart_uploads_with_their_times(self):
    status, headers, body = _list_multipart_uploads(self)
    if isinstance(body, bytes):
        body = _UPLOAD.sub(_upload_with_its_time, body.decode()).encode()
    elif isinstance(body, str):
        body = _UPLOAD.sub(_upload_with_its_time, body)
    return status, headers, body


S3Response.list_multipart_uploads = _list_multipart_uploads_with_their_times

if __name__ == "__main__":
    main()
