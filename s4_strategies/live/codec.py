"""A safe, exact serialiser for saved state, and the atomic write that stores it.

No pickle: a state file is JSON, so reading one never executes code. ``encode``/``decode``
round-trip exactly (bit for bit) nested containers of:

- ``None``, ``bool``, ``int``, ``str``, ``bytes``
- ``float``, finite as JSON numbers (``repr`` round-trips every double, ``-0.0`` included);
  NaN and infinities tagged with their 8 bytes (``{"__float__": "<hex>"}``)
- ``list``; a list of 8 or more Python floats (the feature windows) packed as
  ``{"__floats__": base64 of its float64 bytes}``; ``tuple`` as ``{"__tuple__": [...]}``
- ``dict``: as a JSON object when every key is a ``str`` not starting with ``"__"``, else as
  ``{"__dict__": [[key, value], ...]}`` (int, float, tuple, ``None`` keys)
- numpy arrays of any dtype but ``object`` (complex, structured, datetime):
  ``{"__ndarray__": {"dtype": descr, "shape": [...], "data": base64 of the C-order bytes}}``;
  numpy scalars the same way (``"__npscalar__"``)

``dump_bytes``/``load_bytes`` wrap an encoded body with a format tag, version and the
sha256 of its canonical JSON, so that a truncated or altered file is refused (``StateError``
naming the file) rather than half read. ``write_atomic`` writes a temporary file in the same
folder, flushes and fsyncs it, then ``os.replace``-s it over the target: a crash at any
point leaves either the old file or the new one, never a mix.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from pathlib import Path

import numpy as np

from feeds.atomic import write_atomically

from ..indicators.s4 import StateError

_PACK_MIN = 8  # a list of at least this many Python floats is packed as float64 bytes


# -- encode / decode -------------------------------------------------------------------
def _dtype_descr(dtype: np.dtype):
    if dtype.hasobject:
        raise TypeError(f"numpy arrays of dtype {dtype} (Python objects) cannot be saved safely")
    return np.lib.format.dtype_to_descr(dtype)


def _array(arr: np.ndarray) -> dict:
    return {"dtype": encode(_dtype_descr(arr.dtype)), "shape": list(arr.shape),
            "data": base64.b64encode(np.ascontiguousarray(arr).tobytes()).decode("ascii")}


def encode(obj, where: str = "state"):
    """``obj`` as JSON-ready values (see the module docstring); ``TypeError`` naming the
    place of anything else."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": _array(obj)}
    if isinstance(obj, np.generic):
        return {"__npscalar__": _array(np.asarray(obj))}
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return {"__float__": struct.pack("<d", obj).hex()}
    if isinstance(obj, bytes):
        return {"__bytes__": base64.b64encode(obj).decode("ascii")}
    return _encode_container(obj, where)


def _encode_container(obj, where: str):
    if isinstance(obj, list):
        if len(obj) >= _PACK_MIN and all(type(v) is float for v in obj):
            # the feature windows: one base64 string instead of a JSON number per value
            raw = np.array(obj, dtype="<f8").tobytes()
            return {"__floats__": base64.b64encode(raw).decode("ascii")}
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
        return {"__dict__": [[encode(k, f"{where} key"), encode(v, f"{where}[{k!r}]")]
                             for k, v in obj.items()]}
    raise TypeError(f"{where}: a {type(obj).__name__} cannot be saved (plain data and numpy "
                    "arrays only)")


def _unarray(d: dict) -> np.ndarray:
    descr = decode(d["dtype"])
    dtype = np.lib.format.descr_to_dtype(descr)
    if dtype.hasobject:
        raise ValueError(f"object dtype {dtype} is not allowed")
    raw = base64.b64decode(d["data"], validate=True)
    return np.frombuffer(raw, dtype=dtype).reshape(d["shape"]).copy()


_DECODERS = {
    "__float__": lambda v: struct.unpack("<d", bytes.fromhex(v))[0],
    "__tuple__": lambda v: tuple(decode(x) for x in v),
    "__dict__": lambda v: {_key(decode(k)): decode(x) for k, x in v},
    "__ndarray__": lambda v: _unarray(v),
    "__npscalar__": lambda v: _unarray(v)[()],
    "__bytes__": lambda v: base64.b64decode(v, validate=True),
    "__floats__": lambda v: np.frombuffer(base64.b64decode(v, validate=True),
                                          dtype="<f8").tolist(),
}


def decode(obj):
    """The inverse of :func:`encode` (``ValueError``/``KeyError`` on malformed input)."""
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if not isinstance(obj, dict):
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ValueError("a bare non-finite float (they are tagged)")
        return obj
    if len(obj) == 1:
        (tag, val), = obj.items()
        if tag in _DECODERS:
            return _DECODERS[tag](val)
    bad = [k for k in obj if k.startswith("__")]
    if bad:
        raise ValueError(f"unknown tag {bad[0]!r}")
    return {k: decode(v) for k, v in obj.items()}


def _key(k):
    if isinstance(k, list):  # defensive: tuples are tagged, a list would be unhashable
        raise ValueError("a list as a dict key")
    return k


# -- the file --------------------------------------------------------------------------
def canonical(body) -> bytes:
    """The canonical JSON bytes of an encoded body (what the checksum covers, and what the
    file holds): compact, keys in their order (``json.loads`` keeps it, so the bytes of a
    file read back are the bytes that were hashed)."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False,
                      ensure_ascii=True).encode("ascii")


def dump_bytes(body, fmt: str, version: int) -> bytes:
    """The file's bytes: ``{"format", "version", "sha256", "body"}``, body encoded."""
    canon = canonical(encode(body))
    head = json.dumps({"format": fmt, "version": version,
                       "sha256": hashlib.sha256(canon).hexdigest()}, ensure_ascii=True)
    return head[:-1].encode("ascii") + b', "body": ' + canon + b"}"  # the body as hashed


def load_bytes(raw: bytes, path, fmt: str, versions=(1,)) -> tuple[int, object]:
    """``(version, body)`` of a file written by :func:`dump_bytes`; ``StateError`` naming
    ``path`` if it is not valid JSON, not this format, fails its checksum or cannot be
    decoded."""
    try:
        doc = json.loads(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise StateError(f"{path}: not a readable state file (corrupt or truncated?): "
                         f"{exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise StateError(f"{path}: not a {fmt} file (format {got!r})")
    if doc.get("version") not in versions:
        raise StateError(f"{path}: state format version {doc.get('version')!r}; this version "
                         f"reads {list(versions)}")
    if "body" not in doc or hashlib.sha256(canonical(doc["body"])).hexdigest() != doc.get(
            "sha256"):
        raise StateError(f"{path}: checksum mismatch: the state file was altered or damaged")
    try:
        return doc["version"], decode(doc["body"])
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, struct.error) as exc:
        raise StateError(f"{path}: state that cannot be decoded: {exc!r}") from exc


def write_atomic(path, data: bytes, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically (:func:`feeds.atomic.write_atomically`): a
    temporary file beside it, flushed and fsynced, then ``os.replace``; on any failure the
    temporary file is removed and ``path`` is as it was."""
    return write_atomically(path, lambda f: f.write(data), fsync=fsync)


def read_bytes(path) -> bytes:
    """The file's bytes; ``StateError`` naming it when it cannot be read (a missing file is
    ``FileNotFoundError``)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise StateError(f"{path}: the state file cannot be read: {exc}") from exc
