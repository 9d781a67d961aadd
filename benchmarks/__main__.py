"""`make bench`: run every benchmarks/bench_*.py in its own process, in name order, and stop at the first failure.

Each benchmark prints its own table and writes benchmarks/results/<name>.json; a separate process per benchmark
keeps one's warm caches and leftover tasks out of the next one's numbers.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    wanted = set(argv)
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    for name in names:
        if wanted and name not in wanted and name.removeprefix("bench_") not in wanted:
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], check=False)
        print(f"--- {name}: exit {done.returncode} in {time.perf_counter() - started:.1f} s", flush=True)
        if done.returncode != 0:
            return done.returncode
    report = HERE / "report.py"
    if report.exists() and not wanted:
        return subprocess.run([sys.executable, "-m", "benchmarks.report"], check=False).returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
