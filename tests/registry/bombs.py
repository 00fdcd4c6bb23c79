"""A gzip bomb built cheaply: about 1 MiB on the wire that inflates to 1 GiB of zeros.

Each MiB of zeros is one fully flushed deflate segment, so the segment's bytes can simply be
repeated; the gzip trailer (CRC-32 and length of the inflated data) is computed, so the stream
is valid to its end and a server that read it all would accept it.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import AsyncIterator

MIB = 1 << 20
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"


def _segment() -> bytes:
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    return raw.compress(b"\0" * MIB) + raw.flush(zlib.Z_FULL_FLUSH)


def _crc_of_zeros(mebibytes: int) -> int:
    zeros, crc = b"\0" * MIB, 0
    for _ in range(mebibytes):
        crc = zlib.crc32(zeros, crc)
    return crc


async def gzip_bomb(mebibytes: int = 1024) -> AsyncIterator[bytes]:
    """Send with `Content-Encoding: gzip` (chunked: the length on the wire is not announced)."""
    yield _GZIP_HEADER
    segment = _segment()
    for _ in range(mebibytes):
        yield segment
    final = zlib.compressobj(9, zlib.DEFLATED, -15).flush()  # an empty last block
    size = (mebibytes * MIB) & 0xFFFFFFFF
    yield final + struct.pack("<II", _crc_of_zeros(mebibytes), size)


# A gzip header and then bytes no inflater takes.
CORRUPT_GZIP = b"\x1f\x8b\x08\x00" + b"\xff" * 64
