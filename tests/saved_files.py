"""Helpers of the save/load tests: a model's file as bytes, its zip entries, edits."""

import io
import json
import zipfile

import fastlstm


def saved(model, **kwargs) -> bytes:
    """``fastlstm.save(model, ...)`` into memory."""
    buffer = io.BytesIO()
    fastlstm.save(model, buffer, **kwargs)
    return buffer.getvalue()


def zip_entries(data: bytes) -> dict:
    """The zip entries of a saved file, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def zipped(items: dict) -> bytes:
    """A stored (uncompressed) zip of ``items`` (name -> bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in items.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def tampered(data: bytes, edit) -> bytes:
    """The file ``data`` with its header edited in place by ``edit(header)``."""
    items = zip_entries(data)
    header = json.loads(items["header.json"])
    edit(header)
    return zipped({**items, "header.json": json.dumps(header).encode()})
