"""Figures collected per server and repetition, and the table that compares them.

A figure's cell is its median over its samples (every copy of every
repetition) ± half their range; the ratio
is CRoW's median over the reference's, read in the direction the figure
improves (a time ratio ≤ 1 is good, a rate ratio ≥ 1 is good). The same report
renders as plain text for the terminal and as Markdown for the README.
"""

import statistics
from dataclasses import dataclass, field

REFERENCE, CROW = "reference", "CRoW"
LOWER, HIGHER = "lower", "higher"


@dataclass
class Figure:
    label: str
    unit: str
    better: str  # LOWER or HIGHER
    goal_ratio: float | None = None  # CRoW/reference must reach this, in the better direction
    goal_crow: float | None = None  # CRoW's median must reach this, in the better direction
    values: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)

    def median(self, server: str) -> float | None:
        values = self.values.get(server)
        return statistics.median(values) if values else None

    def spread(self, server: str) -> float:
        values = self.values.get(server, [])
        return (max(values) - min(values)) / 2 if len(values) > 1 else 0.0

    def variation(self, server: str) -> float | None:
        """Coefficient of variation of the repetitions, or None with fewer than two."""
        values = self.values.get(server, [])
        mean = statistics.fmean(values) if len(values) > 1 else 0
        return statistics.stdev(values) / mean if mean else None

    @property
    def ratio(self) -> float | None:
        crow, reference = self.median(CROW), self.median(REFERENCE)
        return crow / reference if crow is not None and reference else None

    def meets(self) -> bool | None:
        """Whether CRoW reaches this figure's goals; None when a figure is missing or it has none."""
        checks = []
        if self.goal_ratio is not None:
            checks.append((self.ratio, self.goal_ratio))
        if self.goal_crow is not None:
            checks.append((self.median(CROW), self.goal_crow))
        if not checks or any(value is None for value, _ in checks):
            return None
        return all(value <= goal if self.better == LOWER else value >= goal for value, goal in checks)


@dataclass
class Results:
    figures: dict[str, Figure] = field(default_factory=dict)

    def figure(self, label: str, unit: str, better: str, **goals: float | None) -> Figure:
        if label not in self.figures:
            self.figures[label] = Figure(label, unit, better, **goals)
        return self.figures[label]

    def variations(self) -> list[tuple[float, str]]:
        found = []
        for figure in self.figures.values():
            for server in (REFERENCE, CROW):
                value = figure.variation(server)
                if value is not None:
                    found.append((value, f"{figure.label}, {server}"))
        return sorted(found)


def number(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"


def rows(results: Results) -> list[list[str]]:
    table = [["figure", "reference", "CRoW", "CRoW/reference"]]
    for figure in results.figures.values():
        cells = [f"{figure.label} ({figure.unit})"]
        for server in (REFERENCE, CROW):
            median = figure.median(server)
            cell = "failed" if median is None else number(median)
            if median is not None and len(figure.values[server]) > 1:
                cell += f" ±{number(figure.spread(server))}"
            if median is not None and figure.failures.get(server):
                cell += f" ({len(figure.failures[server])} failed)"
            cells.append(cell)
        ratio = figure.ratio
        sign = "≤" if figure.better == LOWER else "≥"
        cells.append("—" if ratio is None else f"{ratio:.2f} ({sign}1 good)")
        table.append(cells)
    return table


def targets(results: Results) -> list[str]:
    lines = []
    for figure in results.figures.values():
        verdict = figure.meets()
        if verdict is None and figure.goal_ratio is None and figure.goal_crow is None:
            continue
        sign = "≤" if figure.better == LOWER else "≥"
        goals, found = [], []
        if figure.goal_ratio is not None:
            goals.append(f"CRoW/reference {sign} {figure.goal_ratio:.2f}")
            found.append("ratio " + ("—" if figure.ratio is None else f"{figure.ratio:.2f}"))
        if figure.goal_crow is not None:
            goals.append(f"CRoW {sign} {number(figure.goal_crow)} {figure.unit}")
            crow = figure.median(CROW)
            found.append("CRoW " + ("—" if crow is None else f"{number(crow)} {figure.unit}"))
        mark = {True: "met", False: "MISSED", None: "unknown"}[verdict]
        lines.append(f"{mark}: {figure.label}: {', '.join(goals)} (found {', '.join(found)})")
    return lines


def failures(results: Results) -> list[str]:
    return [
        f"{server}, {figure.label}: {message}"
        for figure in results.figures.values()
        for server, messages in figure.failures.items()
        for message in messages
    ]


def text(results: Results, notes: list[str]) -> str:
    table = rows(results)
    widths = [max(len(row[column]) for row in table) for column in range(len(table[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines += ["", *notes, "", "Targets:", *(f"  {line}" for line in targets(results))]
    if failures(results):
        lines += ["", "Failures:", *(f"  {line}" for line in failures(results))]
    return "\n".join(lines)


def markdown(results: Results, title: str, header: list[str], notes: list[str]) -> str:
    table = rows(results)
    lines = [f"# {title}", "", *header, ""]
    lines.append("| " + " | ".join(table[0]) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table[0]) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in table[1:]]
    lines += ["", *(f"{note}  " for note in notes), "", "Targets:", ""]
    lines += [f"- {line}" for line in targets(results)]
    if failures(results):
        lines += ["", "Failures:", "", *(f"- {line}" for line in failures(results))]
    return "\n".join(lines) + "\n"
