"""The result table every benchmark prints: figure, baseline, ratio, target, MISSED; and the targets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Target:
    """A bound on a figure or a ratio: `at_least` for rates, else (times, sizes) an upper bound."""

    bound: float
    at_least: bool = False

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value <= self.bound

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.bound:g}"


@dataclass
class Row:
    measure: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: no target


def mark(row: Row) -> str:
    return "  MISSED" if row.met is False else ""


def print_table(rows: list[Row], baseline_title: str = "baseline") -> None:
    header = Row("measure", "ours", baseline_title, "ratio", "target", None)
    cells = [[r.measure, r.ours, r.baseline, r.ratio, r.target + mark(r)] for r in [header, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(5)]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        for row in cells
    ]
    print()
    print(lines[0])
    print("-" * len(lines[0]))
    print("\n".join(lines[1:]))


def print_verdict(rows: list[Row]) -> None:
    """The last line of a benchmark: how many targets were missed."""
    missed = sum(r.met is False for r in rows)
    print(f"\n{missed} target(s) MISSED" if missed else "\nAll targets met")
