"""The one exception that parsing and checking programs raise."""

from __future__ import annotations


class ProgramError(ValueError):
    """A program text or a program that is not valid.

    ``line`` and ``column`` (1-based) locate the problem in the text when it came
    from text; ``statement`` (0-based) names the statement when it came from
    checking a program. ``str(error)`` reads ``line 3, column 7: unknown function
    'sqr'`` or ``statement 2 (u = m / s): shape mismatch ...``.
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
            text = f"statement {self.statement}"
            if self.source:
                text += f" ({self.source})"
            where.append(text)
        return f"{', '.join(where)}: {self.message}" if where else self.message
