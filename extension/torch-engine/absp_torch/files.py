"""Reading files of folders someone else wrote (a model from a hub, a colleague's adapter, a run
directory) as the TypeScript side does (extension/util/safe-fs.ts): no open follows a symbolic link,
none blocks on a FIFO or a device, nothing is read whole past a size limit, and a safetensors header
is checked against its file before any tensor is read. Each refusal is one CheckpointError naming
the file.
"""

import json
import os
import stat
import struct

from .protocol import CheckpointError

# A safetensors header is a JSON table of contents; a large model's is a few MB.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
               "F8_E4M3": 1, "F8_E5M2": 1}


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(file: str) -> int:
    """A descriptor of `file` if it is a regular file reached without a link at its last component."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        st = os.lstat(file)
    except FileNotFoundError:
        raise CheckpointError(file, "is missing") from None
    except OSError as e:
        raise CheckpointError(file, f"cannot be read ({e.strerror})") from None
    if stat.S_ISLNK(st.st_mode):
        raise CheckpointError(file, "is a symbolic link, which is not followed (copy the file itself into the folder)")
    try:
        fd = os.open(file, flags)
    except OSError as e:
        raise CheckpointError(file, f"cannot be read ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise CheckpointError(file, f"is {_kind(st.st_mode)}, not a regular file")
    return fd


def check_regular(file: str) -> int:
    """The size of `file`, a regular file reached without a link (for files a library then reads)."""
    fd = open_regular(file)
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def read_json(file: str, limit: int = 16 * 1024 * 1024):
    fd = open_regular(file)
    try:
        size = os.fstat(fd).st_size
        if size > limit:
            raise CheckpointError(file, f"is {size} bytes, more than {limit}, the most this document may have")
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(file, f"is not valid JSON ({e})") from None


def safetensors_header(file: str) -> dict:
    """{tensor name: (dtype, shape)} of a safetensors file, each tensor checked to lie inside the file."""
    fd = open_regular(file)
    try:
        size = os.fstat(fd).st_size
        with os.fdopen(os.dup(fd), "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise CheckpointError(file, f"is {size} bytes long, too short to hold a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_SAFETENSORS_HEADER or n > size - 8:
                raise CheckpointError(file, f"declares a header of {n} bytes, but the file has {size} bytes (the most a header may have is {MAX_SAFETENSORS_HEADER})")
            raw = f.read(n)
    finally:
        os.close(fd)
    try:
        table = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(file, f"has a header that is not valid JSON ({e})") from None
    if not isinstance(table, dict):
        raise CheckpointError(file, "has a header that is not a JSON object")
    data_bytes = size - 8 - n
    out = {}
    for name, entry in table.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            assert isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)
            assert isinstance(start, int) and isinstance(end, int) and 0 <= start <= end
        except (KeyError, TypeError, ValueError, AssertionError):
            raise CheckpointError(file, f"tensor {name} has a malformed header entry") from None
        if dtype not in DTYPE_BYTES:
            raise CheckpointError(file, f"tensor {name} has dtype {dtype!r}, which is not read")
        numel = 1
        for d in shape:
            numel *= d
        if end > data_bytes or end - start != numel * DTYPE_BYTES[dtype]:
            raise CheckpointError(file, f"tensor {name} of shape {shape} ({dtype}) claims bytes {start}..{end}, but the file holds {data_bytes} bytes of data")
        out[name] = (dtype, shape)
    return out
