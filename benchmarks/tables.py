"""How every benchmark prints its tables: Markdown pipe tables padded to line up as plain text,
so a figure can go from a terminal into the docs unchanged."""

from collections.abc import Iterable, Sequence


def ratio(value: float | None, base: float | None) -> str:
    """`value / base` to two decimals, or "-" when either is missing (a failed system) or the
    base is zero."""
    return "-" if value is None or not base else f"{value / base:.2f}"


def print_table(header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1) -> None:
    """The first `left` columns (names) align left, the others (figures) right; None is "-".

    Callers format their figures (digits differ per column); this only lines them up.
    """
    cells = [list(header)] + [["-" if c is None else str(c) for c in row] for row in rows]
    if any(len(row) != len(header) for row in cells):
        raise ValueError(f"every row needs {len(header)} cells: {cells}")
    widths = [max(3, *(len(row[i]) for row in cells)) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        padded = (
            text.ljust(width) if i < left else text.rjust(width)
            for i, (text, width) in enumerate(zip(row, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = (":" + "-" * (w - 1) if i < left else "-" * (w - 1) + ":" for i, w in enumerate(widths))
    print(line(cells[0]))
    print("| " + " | ".join(rule) + " |")
    for row in cells[1:]:
        print(line(row))
