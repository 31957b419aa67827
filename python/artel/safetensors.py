"""A small, strict safetensors reader and writer (numpy arrays).

Tensors travel in artel only as safetensors, never as pickles. The format: an
8-byte little-endian header length N, N bytes of JSON header
``{"__metadata__": {str: str}, NAME: {"dtype": "F32", "shape": [...],
"data_offsets": [begin, end]}, ...}``, then the data section (little-endian,
row-major; offsets relative to its start).

:func:`serialize` lays a file out exactly as the coordinator and ``artel data
add`` do (src/ml/safetensors.cc, itself the reference implementation's
layout): ``__metadata__`` first with sorted keys (left out when empty), then
the tensors by descending dtype alignment (I64, F64, F32, I32, BF16, F16, I16,
I8, U8, BOOL) and by name within a dtype, compact JSON, the header padded with
spaces to a multiple of 8 bytes. The same tensors give the same bytes, so the
same blob digests.

:func:`parse` accepts what the C++ reader accepts: known dtypes, offsets that
cover the data section without gaps, overlap or trailing bytes, and sizes that
match the shapes. BF16 tensors are returned as float32 (numpy has no bfloat16).
"""

from __future__ import annotations

import json
import os
import struct
from typing import Dict, Mapping, Optional, Tuple, Union

import numpy as np

from .errors import DataError

__all__ = ["serialize", "parse", "save", "load"]

# name -> (numpy dtype, reference alignment rank). BF16 has no numpy dtype.
_DTYPES: Dict[str, Tuple[Optional[str], int]] = {
    "BOOL": ("|b1", 0),
    "U8": ("|u1", 1),
    "I8": ("|i1", 2),
    "I16": ("<i2", 5),
    "F16": ("<f2", 7),
    "BF16": (None, 8),
    "I32": ("<i4", 9),
    "F32": ("<f4", 11),
    "F64": ("<f8", 12),
    "I64": ("<i8", 13),
}
_BY_NUMPY = {np.dtype(v[0]): k for k, v in _DTYPES.items() if v[0]}
_METADATA = "__metadata__"
_MAX_HEADER = 100 << 20

PathLike = Union[str, "os.PathLike[str]"]


def _dtype_name(array: np.ndarray, name: str) -> str:
    dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
    for np_dtype, st_name in _BY_NUMPY.items():
        if dtype == np_dtype:
            return st_name
    raise DataError(f"tensor '{name}' has dtype {array.dtype}, which safetensors does not hold "
                    "here; use float32/float64/float16 or a signed/unsigned integer type")


def _quote(text: str) -> str:
    # serde_json's and nlohmann's escaping: UTF-8 kept, control characters as
    # \\u00xx, quotes and backslashes escaped.
    return json.dumps(text, ensure_ascii=False)


def serialize(tensors: Mapping[str, np.ndarray],
              metadata: Optional[Mapping[str, str]] = None) -> bytes:
    """The safetensors file holding `tensors` (name -> numpy array) and
    `metadata` (str -> str), laid out deterministically (see the module
    docstring). Raises DataError for a dtype safetensors does not hold."""
    entries = []
    for name in sorted(tensors):
        if name == _METADATA:
            raise DataError("a tensor may not be named __metadata__")
        array = np.asarray(tensors[name])
        st_dtype = _dtype_name(array, name)
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        entries.append((name, st_dtype, tuple(int(d) for d in array.shape), data))
    # Stable: names stay sorted within a dtype.
    entries.sort(key=lambda e: -_DTYPES[e[1]][1])

    parts = []
    if metadata:
        items = ",".join(f"{_quote(str(k))}:{_quote(str(metadata[k]))}" for k in sorted(metadata))
        parts.append(f'"{_METADATA}":{{{items}}}')
    offset = 0
    for name, st_dtype, shape, data in entries:
        shape_text = ",".join(str(d) for d in shape)
        parts.append(f'{_quote(name)}:{{"dtype":"{st_dtype}","shape":[{shape_text}],'
                     f'"data_offsets":[{offset},{offset + len(data)}]}}')
        offset += len(data)
    header = ("{" + ",".join(parts) + "}").encode("utf-8", "replace")
    header += b" " * ((8 - len(header) % 8) % 8)
    return b"".join([struct.pack("<Q", len(header)), header] + [e[3] for e in entries])


def _bad(message: str) -> DataError:
    return DataError(f"not a valid safetensors file: {message}")


def _nonnegative(value: object, name: str, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _bad(f"tensor '{name}': {field} must hold non-negative integers, got {value!r}")
    return value


def parse(data: Union[bytes, bytearray, memoryview]) -> Tuple[Dict[str, np.ndarray],
                                                                   Dict[str, str]]:
    """Parses a whole safetensors file into ({name: numpy array}, metadata).

    Raises DataError saying what is wrong with which tensor for anything the
    format does not allow."""
    data = bytes(data)
    if len(data) < 8:
        raise _bad(f"{len(data)} bytes, but a file starts with an 8-byte header length")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_HEADER:
        raise _bad(f"header length {header_len} exceeds the limit of {_MAX_HEADER}")
    if header_len > len(data) - 8:
        raise _bad(f"header length {header_len} runs past the end of the {len(data)}-byte file")

    def no_duplicates(pairs):
        seen = {}
        for key, value in pairs:
            if key in seen:
                raise _bad(f"the header repeats the key '{key}'")
            seen[key] = value
        return seen

    try:
        header = json.loads(data[8:8 + header_len].decode("utf-8"),
                            object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _bad(f"the header is not valid JSON: {e}") from None
    if not isinstance(header, dict):
        raise _bad(f"the header must be a JSON object, got {type(header).__name__}")
    body = data[8 + header_len:]

    metadata: Dict[str, str] = {}
    entries = []
    for name, info in header.items():
        if name == _METADATA:
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise _bad("__metadata__ must be an object of strings")
            metadata = dict(info)
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise _bad(f"tensor '{name}': an entry holds exactly dtype, shape and data_offsets")
        st_dtype = info["dtype"]
        if st_dtype not in _DTYPES:
            raise _bad(f"tensor '{name}': unknown dtype {st_dtype!r}; known: "
                       + ", ".join(_DTYPES))
        shape = info["shape"]
        offsets = info["data_offsets"]
        if not isinstance(shape, list):
            raise _bad(f"tensor '{name}': shape must be an array")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise _bad(f"tensor '{name}': data_offsets must be an array [begin, end]")
        shape = [_nonnegative(d, name, "shape") for d in shape]
        begin, end = (_nonnegative(o, name, "data_offsets") for o in offsets)
        itemsize = 2 if st_dtype == "BF16" else np.dtype(_DTYPES[st_dtype][0]).itemsize
        need = itemsize * int(np.prod(shape, dtype=object))
        if begin > end or end > len(body) or end - begin != need:
            raise _bad(f"tensor '{name}': data_offsets [{begin}, {end}] do not fit dtype "
                       f"{st_dtype} and shape {shape} ({need} bytes) in a {len(body)}-byte "
                       "data section")
        entries.append((begin, end, name, st_dtype, shape))
    entries.sort()
    covered = 0
    tensors: Dict[str, np.ndarray] = {}
    for begin, end, name, st_dtype, shape in entries:
        if begin != covered:
            raise _bad(f"tensor '{name}' begins at {begin} but the previous data ends at "
                       f"{covered} ({'gap' if begin > covered else 'overlap'} between tensors)")
        covered = end
        raw = body[begin:end]
        if st_dtype == "BF16":
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        else:
            array = np.frombuffer(raw, dtype=_DTYPES[st_dtype][0]).copy()
        tensors[name] = array.reshape(shape)
    if covered != len(body):
        raise _bad(f"the data section has {len(body)} bytes but the tensors cover {covered}")
    return tensors, metadata


def save(path: PathLike, tensors: Mapping[str, np.ndarray],
         metadata: Optional[Mapping[str, str]] = None) -> None:
    """Writes :func:`serialize` (tensors, metadata) to `path` (through a
    temporary file and a rename, so readers never see half a file)."""
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(serialize(tensors, metadata))
    os.replace(tmp, path)


def load(path: PathLike) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """Reads and parses the safetensors file at `path`."""
    with open(path, "rb") as f:
        return parse(f.read())
