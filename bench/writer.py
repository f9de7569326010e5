"""How every measurement writes what it found: markdown tables, number formats, the JSON beside the figures, and
the README's generated blocks (text between a begin and an end marker, replaced whole by `--readme`).

One module, so a table or a README block looks the same whichever command wrote it (throughput, compare, tune,
overload, blast radius, switch trial).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table: `| a | b |`, `|---|---|`, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_rate(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def write_json(path: Path, data) -> Path:
    """`data` as indented JSON (one space: diffs of committed results stay readable), with a final newline."""
    path.write_text(json.dumps(data, indent=1) + "\n")
    return path


def relative_to_readme(path: Path, readme: Path) -> str:
    """`path` as a link from the README (which sits at the checkout's root)."""
    return os.path.relpath(path, readme.parent)


def replace_block(text: str, block: str, begin_marker: str, end_marker: str) -> str:
    """`text` with what lies between the markers replaced by `block`; ValueError if they are missing."""
    begin, end = text.find(begin_marker), text.find(end_marker)
    if begin < 0 or end < begin:
        raise ValueError(f"README has no {begin_marker!r} ... {end_marker!r} block")
    return text[: begin + len(begin_marker)] + "\n" + block + "\n" + text[end:]


def update_readme(readme: Path, block: str, begin_marker: str, end_marker: str) -> Path:
    """Rewrite `readme`'s generated block in place; ValueError (nothing written) if it has no such block."""
    readme.write_text(replace_block(readme.read_text(), block, begin_marker, end_marker))
    return readme
