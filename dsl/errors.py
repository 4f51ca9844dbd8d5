"""The one exception that parsing and checking programs raise."""

from __future__ import annotations


class ProgramError(ValueError):
    """A program text or a program that is not valid.

    ``line`` and ``column`` (1-based) locate the problem in the text when it came
    from text; ``statement`` (0-based) names the statement when it came from
    checking a program (:func:`dsl.parse.locate` turns it into the line of the
    text). ``str(error)`` reads ``line 3, column 7: unknown function 'sqr'``,
    ``statement 2 (u = m / s): shape mismatch ...`` or ``line 5 (u = m / s): ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        statement: int | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.line = line
        self.column = column
        self.statement = statement
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = []
        if self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column}")
        if self.statement is not None:
            where.append(f"statement {self.statement}")
        if where and self.source:
            where[-1] += f" ({self.source})"
        return f"{', '.join(where)}: {self.message}" if where else self.message
