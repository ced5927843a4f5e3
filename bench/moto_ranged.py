#!/usr/bin/env python3
"""moto server, with UploadPartCopy reading only its range of the source.

moto 5's `upload_part_copy` reads the whole source object (under the object's lock) and then
slices it, so a multipart copy of N parts costs the emulator N × the object's size, one part at a
time. That would charge the emulator's own cost to exactly what the copy benchmark measures, part
parallelism. This launcher reads just the range instead; everything else is moto as installed.
Arguments are moto_server's (`-H 127.0.0.1 -p PORT`). Used by copy_bench.py only.
"""

from moto.s3.models import S3Backend


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

if __name__ == "__main__":
    from moto.server import main

    main()
