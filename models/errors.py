"""Input errors that name the place (file, row, column) and the next step.

Every reader in :mod:`models` collects the problems it finds into an
:class:`InputError` instead of stopping at the first one, so a planner fixes a
file in one pass rather than one run per mistake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: How many problems one error reports before it summarises the rest.
MAX_REPORTED = 20


@dataclass(frozen=True)
class InputIssue:
    """One problem in one place of the input.

    Parameters
    ----------
    message
        What is wrong, in the planner's words.
    file
        The file the problem is in, when there is one.
    row
        Row as a spreadsheet shows it (the header is row 1, the first data
        row is row 2), the line of a scenario file, or ``None``.
    column
        Column name, or a dotted key path for scenario files.
    hint
        What to do about it.
    """

    message: str
    file: Path | str | None = None
    row: int | None = None
    column: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.hint:
            text += f" -> {self.hint}"
        return text


@dataclass
class InputError(Exception):
    """Bad input: one or more :class:`InputIssue` found while reading.

    The CLI maps this exception to exit code 2.
    """

    issues: list[InputIssue] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        shown = self.issues[:MAX_REPORTED]
        lines = [str(issue) for issue in shown]
        hidden = len(self.issues) - len(shown)
        if hidden > 0:
            lines.append(f"... and {hidden} more problems of the same kinds")
        return "\n".join(lines)

    @classmethod
    def single(
        cls,
        message: str,
        *,
        file: Path | str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> InputError:
        """Build an error holding one issue."""
        return cls([InputIssue(message, file, row, column, hint)])


class IssueCollector:
    """Collect issues while validating and raise them together.

    Examples
    --------
    >>> issues = IssueCollector()
    >>> issues.add("latitude is blank", file="a.csv", row=3, column="lat")
    >>> issues.raise_if_any()
    Traceback (most recent call last):
    ...
    models.errors.InputError: a.csv, row 3, column 'lat': latitude is blank
    """

    def __init__(self) -> None:
        self.issues: list[InputIssue] = []

    def add(
        self,
        message: str,
        *,
        file: Path | str | None = None,
        row: int | None = None,
        column: str | None = None,
        hint: str | None = None,
    ) -> None:
        """Record one issue."""
        self.issues.append(InputIssue(message, file, row, column, hint))

    def extend(self, error: InputError) -> None:
        """Record every issue of another error."""
        self.issues.extend(error.issues)

    def __bool__(self) -> bool:
        return bool(self.issues)

    def raise_if_any(self) -> None:
        """Raise an :class:`InputError` holding every issue collected so far, in file and row order."""
        if self.issues:
            ordered = sorted(
                self.issues, key=lambda i: (str(i.file or ""), i.row is None, i.row if i.row is not None else 0)
            )
            raise InputError(ordered)
