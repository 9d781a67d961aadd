"""Printing a benchmark's tables and writing its JSON result, one shape for every benchmark here.

A result file holds `benchmark`, `title`, `generated_at`, `environment`, `parameters` and `tables`, each
table `{"title", "columns", "rows"}` with rows as lists in column order. `benchmarks/report.py` renders
exactly these tables: a number is in the report only if a benchmark printed it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent.parent / "results"


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "platform": sys.platform,
    }


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    return {"title": title, "columns": list(columns), "rows": [list(r) for r in rows]}


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def print_table(t: dict[str, Any]) -> None:
    cells = [[fmt(c) for c in row] for row in t["rows"]]
    widths = [max([len(col)] + [len(r[i]) for r in cells]) for i, col in enumerate(t["columns"])]
    print(f"\n{t['title']}")
    print("  ".join(col.ljust(w) for col, w in zip(t["columns"], widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def write_result(name: str, title: str, parameters: dict[str, Any], tables: list[dict[str, Any]], **extra: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "title": title,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "environment": environment(),
        "parameters": parameters,
        "tables": tables,
        **extra,
    }
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"\nwrote {path.relative_to(RESULTS.parent.parent)}")
    return path
