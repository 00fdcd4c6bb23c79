"""A sha256 whose running state can be saved as bytes and resumed in another process.

An S3 upload session may take its next chunk on any replica, which must continue the hash
without reading back what was uploaded (as Quay keeps a resumable sha256 in its upload row).
hashlib cannot export its state, `rehash` fails with OpenSSL 3, and `resumablesha256` runs at
about 125 MB/s holding the GIL (hashlib: 1.2 GB/s per core, GIL released). So this calls
OpenSSL's own SHA256_Init/Update/Final through ctypes (same speed as hashlib, GIL released) and
saves the state in a layout of its own: the eight chaining words, the byte count, and the bytes
of the block not yet compressed, so a state does not depend on one build's struct padding.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
from functools import cache

_BLOCK = 64
_HEADER = struct.Struct(">8IQ")


class _Sha256Ctx(ctypes.Structure):
    # openssl/sha.h SHA256state_st, unchanged since OpenSSL 0.9.8.
    _fields_ = [
        ("h", ctypes.c_uint32 * 8),
        ("Nl", ctypes.c_uint32),
        ("Nh", ctypes.c_uint32),
        ("data", ctypes.c_uint8 * _BLOCK),
        ("num", ctypes.c_uint32),
        ("md_len", ctypes.c_uint32),
    ]


class HashStateError(ValueError):
    """Saved bytes that are not a sha256 state."""


@cache
def _libcrypto() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypto")
    if name is None:
        raise RuntimeError("libcrypto (OpenSSL) is not installed: resumable sha256 needs it")
    lib = ctypes.CDLL(name)  # CDLL releases the GIL around each call
    ctx = ctypes.POINTER(_Sha256Ctx)
    lib.SHA256_Init.argtypes = [ctx]
    lib.SHA256_Update.argtypes = [ctx, ctypes.c_char_p, ctypes.c_size_t]
    lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctx]
    return lib


class ResumableSha256:
    def __init__(self) -> None:
        self._lib = _libcrypto()
        self._ctx = _Sha256Ctx()
        self._lib.SHA256_Init(ctypes.byref(self._ctx))

    def update(self, data: bytes) -> None:
        """Hash `data`; call it from a thread for big pieces (the GIL is released)."""
        self._lib.SHA256_Update(ctypes.byref(self._ctx), data, len(data))

    @property
    def length(self) -> int:
        """Bytes hashed so far."""
        return int((self._ctx.Nh << 32) | self._ctx.Nl) >> 3

    def hexdigest(self) -> str:
        ctx = _Sha256Ctx.from_buffer_copy(self._ctx)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctypes.byref(ctx))
        return out.raw.hex()

    def save(self) -> bytes:
        ctx = self._ctx
        return _HEADER.pack(*ctx.h, self.length) + bytes(ctx.data[: ctx.num])

    @classmethod
    def load(cls, state: bytes) -> ResumableSha256:
        if len(state) < _HEADER.size:
            raise HashStateError("sha256 state is too short")
        *words, length = _HEADER.unpack_from(state)
        pending = state[_HEADER.size :]
        if len(pending) != length % _BLOCK:
            raise HashStateError("sha256 state does not match its byte count")
        hasher = cls()
        ctx = hasher._ctx
        ctx.h[:] = words
        bits = length * 8
        ctx.Nl, ctx.Nh = bits & 0xFFFFFFFF, (bits >> 32) & 0xFFFFFFFF
        ctypes.memmove(ctx.data, pending, len(pending))
        ctx.num = len(pending)
        return hasher
