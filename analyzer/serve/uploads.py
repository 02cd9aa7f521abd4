"""Streaming multipart uploads straight to disk, with a size limit, never whole in memory."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.multipart import MultipartParser, parse_options_header

__all__ = ["Upload", "UploadError", "TooLarge", "receive", "safe_name"]

FIELD_LIMIT = 64 * 1024  # bytes of a non-file form field
_UNSAFE = re.compile(r"[^\w.+@=,-]+")


class UploadError(Exception):
    """The request is not an upload we can take (the message says why)."""


class TooLarge(UploadError):
    pass


@dataclass
class Upload:
    files: list[dict] = field(default_factory=list)  # {"name": shown name, "stored": file name, "bytes": n}
    fields: dict[str, list[str]] = field(default_factory=dict)
    total: int = 0


def safe_name(name: str, taken: set[str]) -> str:
    """A file name for the upload directory: the last path component, harmless characters,
    unique among ``taken``."""
    base = re.split(r"[\\/]", name)[-1]
    base = unicodedata.normalize("NFC", base)
    base = _UNSAFE.sub("_", base).strip("._") or "upload"
    base = base[:120]
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        stem, dot, ext = base.partition(".")
        candidate = f"{stem}-{n}{dot}{ext}"
    taken.add(candidate)
    return candidate


async def receive(
    content_type: str, body: AsyncIterator[bytes], folder: Path, limit: int, file_field: str = "files"
) -> Upload:
    """Parse a multipart/form-data body chunk by chunk; files under ``folder``."""
    ctype, params = parse_options_header(content_type or "")
    if ctype != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("expected multipart/form-data with a boundary (a form with files)")
    folder.mkdir(parents=True, exist_ok=True)
    up = Upload()
    taken: set[str] = set()
    state: dict = {"headers": {}, "field": b"", "value": b"", "out": None, "name": None, "buf": None}

    def on_part_begin() -> None:
        state.update(headers={}, field=b"", value=b"", out=None, name=None, buf=None)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["field"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished() -> None:
        _, disp = parse_options_header(state["headers"].get(b"content-disposition", b""))
        name = disp.get(b"name", b"").decode("utf-8", "replace")
        filename = disp.get(b"filename")
        state["name"] = name
        if filename is not None:
            if name != file_field:
                raise UploadError(f"files go in the field {file_field!r}, not {name!r}")
            shown = filename.decode("utf-8", "replace")
            stored = safe_name(shown, taken)
            fh: BinaryIO = open(folder / stored, "wb")  # noqa: SIM115 - closed at the part's end
            state["out"] = fh
            up.files.append({"name": shown[:300], "stored": stored, "bytes": 0})
        else:
            state["buf"] = bytearray()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        n = end - start
        up.total += n
        if up.total > limit:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
        if state["out"] is not None:
            state["out"].write(data[start:end])
            up.files[-1]["bytes"] += n
        else:
            if len(state["buf"]) + n > FIELD_LIMIT:
                raise UploadError(f"form field {state['name']!r} is longer than {FIELD_LIMIT} bytes")
            state["buf"] += data[start:end]

    def on_part_end() -> None:
        if state["out"] is not None:
            state["out"].close()
            state["out"] = None
        elif state["buf"] is not None:
            up.fields.setdefault(state["name"], []).append(state["buf"].decode("utf-8", "replace"))

    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    def feed(step, *args) -> None:
        try:
            step(*args)
        except (UploadError, OSError):
            raise  # ours, or the disk's
        except Exception as exc:  # the parser's own errors: a malformed body
            raise UploadError(f"malformed multipart body: {exc}") from exc

    try:
        async for chunk in body:  # a client that goes away raises here, as itself
            feed(parser.write, chunk)
        feed(parser.finalize)
    finally:
        if state["out"] is not None:
            state["out"].close()
    return up
