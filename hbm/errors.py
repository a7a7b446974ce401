"""Errors that reach users. Each names the file, and where it applies the key or column and value."""

from __future__ import annotations


class HbmError(Exception):
    """A problem the user can fix; the message says what and where."""


class ConfigError(HbmError):
    """An analysis config file is invalid."""


class DataError(HbmError):
    """An input data file violates a check.

    The message always names the file and, where they apply, the column and the offending row or value.
    """

    def __init__(self, path, problem: str, column: str | None = None, row: int | None = None, value=None):
        self.path, self.column, self.row, self.value = str(path), column, row, value
        where = [self.path]
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        text = ", ".join(where) + f": {problem}"
        if value is not None:
            text += f" (value {value!r})"
        super().__init__(text)


class DiagnosticsError(HbmError):
    """A fit failed its convergence diagnostics and the analysis says such failures stop the run."""


class ArchiveError(HbmError):
    """An archive does not match its manifest, or data do not match the archived checksum."""


class DiskFullError(HbmError):
    """A result could not be written because its disk (or quota) is full; the message names the file."""
