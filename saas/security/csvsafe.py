"""CSV downloads that are safe to open in Excel: the one way the portal writes CSV.

A cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read by
spreadsheet programs as a formula (CSV/formula injection: a patient's display name
``=HYPERLINK(...)`` would run when staff open the export). Such cells get a leading ``'``, as
OWASP recommends; the apostrophe is not shown by Excel. Full-width variants are covered too
because Japanese Excel converts ``＝`` typed at a cell start into ``=``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
BOM = "\ufeff"  # Excel opens UTF-8 Japanese correctly only with it


def safe_cell(value: Any) -> Any:
    """The value as a CSV cell that no spreadsheet evaluates. Numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_document(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A whole CSV file (UTF-8 with BOM), every cell neutralised with :func:`safe_cell`."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.writer(out)
    writer.writerow([safe_cell(str(cell)) for cell in header])
    writer.writerows([safe_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


class SafeWriter:
    """A ``csv.writer`` for exports written row by row (large files): every cell neutralised."""

    def __init__(self, out: io.TextIOBase) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([safe_cell(cell) for cell in row])


def safe_writer(out: io.TextIOBase, *, bom: bool = True) -> SafeWriter:
    """Start a CSV in ``out`` (with the BOM for Excel) and return a writer that neutralises cells."""
    if bom:
        out.write(BOM)
    return SafeWriter(out)
