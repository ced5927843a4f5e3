#!/usr/bin/env python3
"""moto server, with two of its costs cut for the copy benchmark.

1. moto 5's `upload_part_copy` reads the whole source object (under the object's lock) and then
   slices it, so a multipart copy of N parts costs the emulator N × the object's size, one part
   at a time. That would charge the emulator's own cost to exactly what the copy benchmark
   measures, part parallelism. Here it reads just the range.
2. moto 5's CompleteMultipartUpload copies every part twice and computes a full-object CRC64NVME
   in Python over the whole object, even when the client asked for no checksum: over a second
   for 256 MiB, all of it on the copy's critical path. Here an upload that names no checksum
   algorithm is completed without one (its ETag is computed as before); one that names an
   algorithm goes through moto's own code.

Everything else is moto as installed. Arguments are moto_server's (`-H 127.0.0.1 -p PORT`).
Used by copy_bench.py only.
"""

from hashlib import md5

from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML
from moto.s3.models import S3_UPLOAD_PART_MIN_SIZE, FakeMultipart, S3Backend


def upload_part_copy(
    self,
    dest_bucket_name,
    multipart_id,
    part_id,
    src_bucket_name,
    src_key_name,
    src_version_id,
    start_byte,
    end_byte,
):
    multipart = self.get_bucket(dest_bucket_name).multiparts[multipart_id]
    source = self.get_object(src_bucket_name, src_key_name, version_id=src_version_id)
    with source.lock:
        if start_byte is None:
            source._value_buffer.seek(0)
            value = source._value_buffer.read()
        else:
            source._value_buffer.seek(start_byte)
            value = source._value_buffer.read(end_byte - start_byte + 1)
    return multipart.set_part(part_id, value)


S3Backend.upload_part_copy = upload_part_copy

_moto_complete = FakeMultipart.complete


def complete(self, body):
    if self.metadata.get("x-amz-checksum-algorithm"):
        return _moto_complete(self, body)
    total = bytearray()
    md5s = bytearray()
    last = None
    count = 0
    for number, etag in body:
        part = self.parts.get(number)
        part_etag = part.etag.replace('"', "") if part is not None else None
        if part_etag is None or part_etag != etag.replace('"', ""):
            raise InvalidPart()
        if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
            raise EntityTooSmall()
        md5s.extend(bytes.fromhex(part_etag))
        with part.lock:
            part._value_buffer.seek(0)
            total.extend(part._value_buffer.read())
        last = part
        count += 1
    if count == 0:
        raise MalformedXML
    return bytes(total), f"{md5(bytes(md5s)).hexdigest()}-{count}", None


FakeMultipart.complete = complete

if __name__ == "__main__":
    from moto.server import main

    main()
