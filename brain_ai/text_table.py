"""The one plain-text table formatter of brain_ai (reports, CLI tables), rendered by rich."""

from __future__ import annotations

import io
from collections.abc import Collection, Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from brain_ai.errors import ConfigError

__all__ = ["text_table"]

_TEXT_BOX = box.Box("    \n    \n -- \n    \n    \n    \n    \n    \n", ascii=True)


def text_table(header: Sequence[str], rows: Iterable[Sequence[str] | str], *,
               right: Collection[int] = ()) -> str:
    """Rows of strings as an aligned plain-text table (rendered by rich, no colour codes).

    Args:
        header: column titles; a line of dashes follows them.
        rows: one sequence of cells per row (``len(header)`` strings), or a ``str``: a heading
            line (e.g. a group title) written into the first column.
        right: indices of the columns aligned to the right (numbers).
    Returns:
        The table, lines without trailing blanks, no final newline. Cells are never wrapped
        or cut, and ``[...]`` in a cell is text, not rich markup.
    """
    table = Table(box=_TEXT_BOX, show_edge=False, pad_edge=False, header_style="",
                  highlight=False)
    for i, title in enumerate(header):
        table.add_column(title, justify="right" if i in right else "left", no_wrap=True)
    blank = [""] * (len(header) - 1)
    for row in rows:
        cells = [row, *blank] if isinstance(row, str) else list(row)
        if len(cells) != len(header):
            raise ConfigError("text_table", "a row has the wrong number of cells",
                              got=f"{len(cells)} cells: {cells!r}",
                              expected=f"{len(header)} cells, one per column of {header!r}",
                              hint="give every row one string per header column")
        table.add_row(*(Text(str(c)) for c in cells))
    buf = io.StringIO()
    Console(file=buf, width=100_000, color_system=None, force_terminal=False,
            force_jupyter=False, highlight=False, markup=False, emoji=False).print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines())
