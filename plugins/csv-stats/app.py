"""csv-stats: statistics of CSV data and texts, written in Python with tack's SDK.

Every tool reads what it is given or files under /data, the one directory the
manifest asks for; the operator decides which host directory that is, and
whether it is writable. ``write_csv`` is destructive (it replaces a file), so
an agent's call to it goes through the approval gate.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Optional

from tack_sdk import Field, ToolError, tool

DATA = "/data"
log = logging.getLogger("csv-stats")


@dataclass
class Column:
    """Statistics of one column."""

    name: str
    count: int
    missing: int
    distinct: int
    numeric: bool
    min: Optional[float] = None
    max: Optional[float] = None
    mean: Optional[float] = None
    median: Optional[float] = None
    top: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Summary:
    """What a CSV table holds."""

    rows: int
    columns: list[Column]


@dataclass
class WordCount:
    word: str
    count: int


@dataclass
class Written:
    path: str
    rows: int
    bytes: int


def _resolve(path: str) -> str:
    """`path` relative to /data; anything that leaves it is refused here (and by
    the sandbox in any case)."""
    if path.startswith("/"):
        path = os.path.relpath(path, DATA)
    full = os.path.normpath(os.path.join(DATA, path))
    if full != DATA and not full.startswith(DATA + "/"):
        raise ToolError(f"`{path}` is outside {DATA}", "permission-denied", field="/path")
    return full


def _number(text: str) -> Optional[float]:
    try:
        return float(text.replace("_", "x"))  # "1_000" is not a number in a CSV
    except ValueError:
        return None


@tool(read_only=True, idempotent=True)
def summarize(
    csv_text: Annotated[Optional[str], "The CSV itself (give this or `path`)."] = None,
    path: Annotated[Optional[str], "A CSV file under /data (give this or `csv_text`)."] = None,
    delimiter: Annotated[str, Field(min_length=1, max_length=1)] = ",",
) -> Summary:
    """Summarize a CSV table with a header row: per column, how many values are
    present, missing and distinct; min, max, mean and median of numeric columns;
    the most common values of the others."""
    if (csv_text is None) == (path is None):
        raise ToolError("give exactly one of `csv_text` and `path`", "invalid-arguments")
    if path is not None:
        try:
            with open(_resolve(path), newline="", encoding="utf-8") as f:
                csv_text = f.read()
        except FileNotFoundError:
            raise ToolError(f"no file `{path}` under {DATA}", "not-found", field="/path") from None
        except PermissionError as e:
            raise ToolError(f"cannot read `{path}`: {e}", "permission-denied", field="/path") from None
    reader = csv.reader(io.StringIO(csv_text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ToolError("the CSV is empty: it needs a header row", "invalid-arguments") from None
    values: list[list[str]] = [[] for _ in header]
    rows = 0
    for row in reader:
        rows += 1
        for i in range(len(header)):
            values[i].append(row[i].strip() if i < len(row) else "")
    columns = []
    for name, cells in zip(header, values):
        present = [c for c in cells if c]
        numbers = [_number(c) for c in present]
        col = Column(
            name=name,
            count=len(present),
            missing=len(cells) - len(present),
            distinct=len(set(present)),
            numeric=bool(present) and all(n is not None for n in numbers),
        )
        if col.numeric:
            nums = [n for n in numbers if n is not None]
            col.min, col.max = min(nums), max(nums)
            col.mean = round(statistics.fmean(nums), 6)
            col.median = statistics.median(nums)
        else:
            col.top = Counter(present).most_common(3)
        columns.append(col)
    log.info("summarized %d rows, %d columns", rows, len(header))
    return Summary(rows=rows, columns=columns)


@tool(read_only=True, idempotent=True)
def top_words(
    text: str,
    n: Annotated[int, Field(minimum=1, maximum=1000)] = 10,
    ignore: Optional[list[str]] = None,
) -> list[WordCount]:
    """The most frequent words of a text, lowercased, most frequent first.

    Args:
        text: The text.
        n: How many words to return.
        ignore: Words to leave out (stop words).
    """
    skip = {w.lower() for w in ignore or []}
    words = [w for w in re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower()) if w not in skip]
    return [WordCount(w, c) for w, c in sorted(Counter(words).items(), key=lambda p: (-p[1], p[0]))[:n]]


@tool(destructive=True)
def write_csv(
    path: str,
    rows: list[dict[str, str]],
    columns: Optional[list[str]] = None,
) -> Written:
    """Write rows to a CSV file under /data, replacing the file if it exists.

    Args:
        path: The file, relative to /data.
        rows: The rows, each an object of column name to value.
        columns: The column order [default: the keys of the first row].
    """
    full = _resolve(path)
    names = columns or (list(rows[0]) if rows else [])
    if not names:
        raise ToolError("nothing to write: give rows or columns", "invalid-arguments", field="/rows")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, extrasaction="raise")
    writer.writeheader()
    try:
        writer.writerows(rows)
    except ValueError as e:
        raise ToolError(f"a row has a column not in `columns`: {e}", "invalid-arguments", field="/rows") from None
    data = out.getvalue().encode()
    try:
        with open(full, "wb") as f:
            f.write(data)
    except PermissionError as e:
        raise ToolError(f"cannot write `{path}`: {e}", "permission-denied", field="/path") from None
    except FileNotFoundError:
        raise ToolError(f"the directory of `{path}` does not exist", "not-found", field="/path") from None
    log.info("wrote %d rows to %s", len(rows), full)
    return Written(path=path, rows=len(rows), bytes=len(data))
