"""Reads IDX files (the MNIST family's format), gzipped or not, into uint8 tensors."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from convzoo.errors import ConvzooError

_UINT8 = 0x08


def read_verified(path: Path, md5: str) -> bytes:
    """The decompressed bytes of ``path``; a bad checksum or a broken archive is an error naming the file."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise ConvzooError(f"{path} is corrupt or truncated ({error}); delete it and get the data set again") from None
    if hashlib.md5(data).hexdigest() != md5:
        raise ConvzooError(f"{path} fails its checksum (expected MD5 {md5} of its content); it is corrupt or truncated")
    return data


def decode(data: bytes, name: str):
    """A uint8 tensor of the IDX array in ``data`` (images: (N, H, W); labels: (N,))."""
    import torch

    if len(data) < 4 or data[0] or data[1] or data[2] != _UINT8:
        raise ConvzooError(f"{name} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return torch.frombuffer(bytearray(data[4 + 4 * ndim:]), dtype=torch.uint8).reshape(shape)
