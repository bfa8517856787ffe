"""The container of a model file: a zip of ``header.json`` and ``.npy`` entries.

:func:`_write` writes it (stored entries with a fixed timestamp, so the same
model gives the same bytes); :func:`_open` and :class:`_Reader` read it,
checking the entry names and sizes, the header's format and version and every
declared array's dtype and shape before any array is read, and
:func:`_reading` turns what malformed bytes raise into a load error.  The
header's ``params`` and ``state`` are checked by
:mod:`fastlstm.io.layer_state` and :mod:`fastlstm.io.estimator_state`.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import struct
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

import numpy as np

from fastlstm.io.checks import _check, _check_keys, _detail, _Invalid, _is_int, _names, _short

FORMAT_NAME = "fastlstm"
FORMAT_VERSION = 2
_HEADER = "header.json"
_MAX_HEADER_BYTES = 64 << 20
_MAX_NPY_HEADER = 4096
_ARRAY_NAME = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64}){0,4}")
# dtypes as save writes them (``ndarray.dtype.str``): numbers and strings only
_DTYPE_TEXT = re.compile(r"[<>|=]?[biufUS][0-9]{1,10}")
# what malformed bytes make zipfile, zlib, struct, json and NumPy's .npy reader
# raise; turned into ValueError where the file's bytes are read (see _reading)
_MALFORMED: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile, NotImplementedError, EOFError, OSError, OverflowError, struct.error,
    zlib.error, UnicodeDecodeError, ValueError, MemoryError, RecursionError)


def _write(path: str | os.PathLike | BinaryIO, header: dict,
           arrays: dict[str, np.ndarray]) -> None:
    """Write ``header`` (its ``arrays`` entry added) and ``arrays`` as a model file."""
    header["arrays"] = {name: {"dtype": a.dtype.str, "shape": list(a.shape)}
                        for name, a in arrays.items()}
    blob = json.dumps(header, indent=1, sort_keys=True).encode("utf-8")
    # everything is encoded: only now is the destination touched
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        _write_entry(zf, _HEADER, blob)
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(a), allow_pickle=False)
            _write_entry(zf, f"arrays/{name}.npy", buf.getvalue())


def _write_entry(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    # a fixed timestamp and mode: the same model gives the same bytes, so a
    # published checksum identifies it
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = 0o644 << 16
    zf.writestr(info, data, compress_type=zipfile.ZIP_STORED)


@contextmanager
def _reading(what: str) -> Iterator[None]:
    """Turn what malformed bytes raise while ``what`` is read into a load error.

    zipfile, struct, zlib and NumPy's ``.npy`` reader report damaged data with
    many exception classes (``BadZipFile``, ``NotImplementedError`` for an
    unknown zip version, ``OverflowError`` for absurd offsets, ...); this is
    the one place they become the documented ``ValueError``.  Only the reading
    of the file's bytes is wrapped, never the building of the model.
    """
    try:
        yield
    except _Invalid:
        raise
    except _MALFORMED as exc:
        raise _Invalid(f"{what}: the file is corrupted or truncated "
                       f"({type(exc).__name__}: {_detail(exc)})") from None


def _open(f: BinaryIO) -> tuple[zipfile.ZipFile, int | None]:
    """The archive of an open binary file, and the file's size from where it stands."""
    size = None
    if hasattr(f, "seek") and hasattr(f, "tell"):
        here = f.tell()
        size = f.seek(0, io.SEEK_END) - here
        f.seek(here)
    try:
        return zipfile.ZipFile(f, "r"), size
    except zipfile.BadZipFile as exc:
        raise _Invalid(f"not a fastlstm model file (not a zip archive, or a truncated one: "
                       f"{exc})") from None
    except _MALFORMED as exc:  # e.g. an unknown "version needed" in an entry record
        raise _Invalid(f"not a fastlstm model file, or a corrupted one (its zip directory "
                       f"is malformed: {type(exc).__name__}: {_detail(exc)})") from None


class _Reader:
    """A validated view of an open archive: header first, arrays on demand."""

    def __init__(self, zf: zipfile.ZipFile, file_size: int | None) -> None:
        self.zf = zf
        infos = zf.infolist()
        names = [i.filename for i in infos]
        _check(len(set(names)) == len(names), "the archive holds duplicate entry names")
        by_name = {i.filename: i for i in infos}
        _check(_HEADER in by_name, f"the archive has no {_HEADER}: not a fastlstm model file")
        for info in infos:
            _check(info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1,
                   f"entry {_short(info.filename)} is compressed or encrypted; fastlstm writes "
                   "stored entries only")
            _check(file_size is None or info.file_size <= file_size,
                   f"entry {_short(info.filename)} declares {info.file_size} bytes, more than "
                   "the whole file")
            # a stored entry's data is its content: both sizes are the same
            _check(info.compress_size == info.file_size,
                   f"entry {_short(info.filename)} declares {info.compress_size} stored bytes "
                   f"for {info.file_size} bytes of content")
        head = by_name[_HEADER]
        _check(head.file_size <= _MAX_HEADER_BYTES,
               f"{_HEADER} declares {head.file_size} bytes (at most {_MAX_HEADER_BYTES})")
        with _reading(_HEADER):
            raw = zf.read(head)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError, MemoryError) as exc:
            raise _Invalid(f"{_HEADER} is not valid JSON ({_detail(exc)})") from None
        _check(isinstance(header, dict), f"{_HEADER} must hold a JSON object")
        _check(header.get("format") == FORMAT_NAME,
               f"not a fastlstm model file (format {_short(header.get('format'))})")
        version = header.get("format_version")
        _check(_is_int(version) and version >= 1,
               f"malformed format_version {_short(version)}")
        if version > FORMAT_VERSION:
            raise _Invalid(
                f"the file has format version {_short(version)}, written by fastlstm "
                f"{_short(header.get('fastlstm_version'))}; this fastlstm reads format "
                f"versions up to {FORMAT_VERSION}: upgrade fastlstm to load it")
        _check_keys(header, ("format", "format_version", "fastlstm_version", "class",
                             "params", "state", "arrays"), _HEADER)
        specs = header["arrays"]
        _check(isinstance(specs, dict), "'arrays' must be a JSON object")
        self.specs: dict[str, tuple[np.dtype, tuple[int, ...]]] = {}
        for name, spec in specs.items():
            _check(_ARRAY_NAME.fullmatch(name), f"bad array name {_short(name)}")
            _check_keys(spec, ("dtype", "shape"), f"array {name!r}")
            dtype = self._dtype(spec["dtype"], name)
            shape = spec["shape"]
            _check(isinstance(shape, list) and len(shape) <= 3
                   and all(_is_int(n) and n >= 0 for n in shape),
                   f"array {name!r} has a malformed shape {_short(shape)}")
            entry = by_name.get(f"arrays/{name}.npy")
            _check(entry is not None, f"array {name!r} is declared but missing")
            nbytes = math.prod(shape) * dtype.itemsize
            # each dimension too: an empty array's other dimensions are no bound
            _check(nbytes <= entry.file_size and all(n <= entry.file_size for n in shape),
                   f"array {name!r} declares shape {_short(tuple(shape))} ({_short(nbytes)} "
                   f"bytes), larger than its entry ({entry.file_size} bytes)")
            self.specs[name] = (dtype, tuple(shape))
        expected = {_HEADER} | {f"arrays/{n}.npy" for n in self.specs}
        extra = set(names) - expected
        _check(not extra, f"unexpected entries in the archive: {_names(extra)}")
        self.header = header
        self.version = version
        self.by_name = by_name

    @staticmethod
    def _dtype(text: Any, name: str) -> np.dtype:
        _check(isinstance(text, str) and _DTYPE_TEXT.fullmatch(text),
               f"array {name!r}: dtype {_short(text)} is not allowed (numbers and strings "
               "only)")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated aliases are refused below
                dtype = np.dtype(text)
        except (TypeError, ValueError, OverflowError):
            raise _Invalid(f"array {name!r}: unknown dtype {text!r}") from None
        _check(dtype.kind in "biufUS" and not dtype.hasobject and dtype.fields is None
               and dtype.itemsize > 0,
               f"array {name!r}: dtype {text!r} is not allowed (numbers and strings only)")
        return dtype

    def count(self, prefix: str) -> int:
        """How many declared arrays are named ``prefix...``."""
        return sum(name.startswith(prefix) for name in self.specs)

    def largest_dimension(self, prefix: str) -> int:
        """The largest dimension of the declared arrays named ``prefix...`` (0 if none)."""
        return max((n for name, (_, shape) in self.specs.items() if name.startswith(prefix)
                    for n in shape), default=0)

    def expect(self, expected: dict[str, tuple[Any, tuple[int, ...]]]) -> None:
        """Check that the declared arrays are exactly ``expected`` (name: (dtype, shape))."""
        missing = set(expected) - set(self.specs)
        extra = set(self.specs) - set(expected)
        _check(not missing and not extra,
               f"the arrays do not match the model: missing {_names(missing)}, "
               f"unexpected {_names(extra)}")
        for name, (dtype, shape) in expected.items():
            got_dtype, got_shape = self.specs[name]
            _check(got_shape == tuple(shape),
                   f"array {name!r} has shape {got_shape}, the model needs "
                   f"{_short(tuple(shape))}")
            if dtype is not None:
                _check(got_dtype == np.dtype(dtype),
                       f"array {name!r} has dtype {got_dtype}, the model needs "
                       f"{np.dtype(dtype)}")

    def array(self, name: str) -> np.ndarray:
        """Read one declared array, checking its .npy header against the JSON header."""
        dtype, shape = self.specs[name]
        info = self.by_name[f"arrays/{name}.npy"]
        with _reading(f"array {name!r}"), self.zf.open(info) as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    got = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
                elif version == (2, 0):
                    got = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
                else:
                    raise ValueError(f"unsupported .npy version {version}")
            except (ValueError, SyntaxError, RecursionError, MemoryError) as exc:
                raise _Invalid(f"array {name!r}: bad .npy header ({_detail(exc)})") from None
            got_shape, fortran, got_dtype = got
            _check(got_dtype == dtype and tuple(got_shape) == shape and not fortran,
                   f"array {name!r}: the .npy entry holds {got_dtype} {_short(tuple(got_shape))}"
                   f"{' (Fortran order)' if fortran else ''}, the header declares {dtype} "
                   f"{shape}")
            nbytes = math.prod(shape) * dtype.itemsize
            _check(f.tell() + nbytes == info.file_size,
                   f"array {name!r}: the entry has {info.file_size - f.tell()} bytes of "
                   f"data for {nbytes} declared")
            data = f.read(nbytes)  # reaching the end checks the CRC
            _check(len(data) == nbytes, f"array {name!r} is truncated")
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
