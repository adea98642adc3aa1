"""Reading CSV files as a stream of rows: UTF-8 (an optional BOM), RFC 4180
quoting (quoted cells may hold newlines), bounded rows and columns.

Problems with the file as a whole raise SourceError; problems of one row are
the pipeline's business (a ragged row fails alone)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import IO

MAX_ROWS = 1_000_000
MAX_COLUMNS = 100
# A trait value is at most 1,024 characters; a much longer cell is not a CSV
# we can import (and must not be buffered without bound).
MAX_CELL_CHARS = 64 * 1024

csv.field_size_limit(MAX_CELL_CHARS)


class SourceError(ValueError):
    """The file cannot be read as the CSV we accept."""


class CsvSource:
    """Rows of a binary CSV stream: `header`, then `rows()` as (row number,
    cells), the header being row 1 (as a spreadsheet numbers them).
    `bytes_read` follows the underlying stream, for progress."""

    def __init__(self, stream: IO[bytes], *, max_rows: int = MAX_ROWS) -> None:
        self._counter = _Counting(stream)
        self._text = io.TextIOWrapper(
            io.BufferedReader(self._counter, buffer_size=1 << 20),
            encoding="utf-8-sig",
            errors="strict",
            newline="",
        )
        self._reader = csv.reader(self._text, strict=True)
        self.max_rows = max_rows
        self.number = 1
        self.header = self._read_header()

    @property
    def bytes_read(self) -> int:
        return self._counter.count

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise SourceError(
                f"the file is not UTF-8 text (an invalid byte in or after row {self.number})"
            ) from None
        except csv.Error as exc:
            raise SourceError(f"row {self.number + 1}: not valid CSV ({exc})") from None

    def _read_header(self) -> list[str]:
        header = self._next()
        while header == []:
            header = self._next()
        if header is None:
            raise SourceError("the file is empty: a header row is required")
        if len(header) > MAX_COLUMNS:
            raise SourceError(f"the header has {len(header)} columns; at most {MAX_COLUMNS}")
        seen: set[str] = set()
        for name in header:
            if name in seen:
                raise SourceError(f"the header names column '{name[:64]}' twice")
            seen.add(name)
        return header

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        while True:
            cells = self._next()
            if cells is None:
                return
            if not cells:
                continue  # blank line
            self.number += 1
            if self.number - 1 > self.max_rows:
                raise SourceError(f"the file has more than {self.max_rows:,} rows")
            yield self.number, cells


class _Counting(io.RawIOBase):
    """A read-only stream that counts the bytes read through it."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n
