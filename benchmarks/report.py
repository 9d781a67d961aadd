"""Read every benchmarks/results/*.json and write benchmarks/REPORT.md, with PNG plots in benchmarks/results/.

Only numbers a benchmark wrote appear: tables are rendered from the result files as they are (a result in
the `tables` shape of `benchmarks/sim/output.py` as its own tables; any other JSON generically), and the
plots draw the series the simulation recorded. Run by `make bench` after the benchmarks, or on its own:

    python -m benchmarks.report
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.sim.output import fmt

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPORT = HERE / "REPORT.md"
ORDER = ("overhead", "routing", "sidecar", "simulation", "retry", "replicas")
INCIDENT_COLOURS = {"outage down": "#d62728", "outage errors": "#ff7f0e", "spike": "#9467bd", "issuer": "#17becf"}
STRATEGY_COLOURS = {
    "static_global": "#1f77b4",
    "per_country": "#ff7f0e",
    "weighted": "#8c564b",
    "success_rate": "#2ca02c",
    "success_rate_warm": "#0b5d1e",
    "oracle": "#7f7f7f",
}


# -- tables ----------------------------------------------------------------------------------------------------
def md_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float) and math.isnan(v):
            return "n/a"
        return fmt(v).replace("|", "\\|")

    head = "| " + " | ".join(str(c) for c in columns) + " |"
    sep = "|" + "|".join(":---" if i == 0 else "---:" for i in range(len(columns))) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def generic_tables(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """(title, markdown) for a result file not in the `tables` shape: scalars, lists of records, dicts of records."""
    out: list[tuple[str, str]] = []
    scalars = [(k, v) for k, v in doc.items() if _is_scalar(v) and k != "benchmark"]
    if scalars:
        out.append((prefix or "values", md_table(["key", "value"], scalars)))
    for key, value in doc.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value):
            cols: list[str] = []
            for rec in value:
                cols.extend(k for k in rec if k not in cols and _is_scalar(rec[k]))
            out.append((name, md_table(cols, [[rec.get(c) for c in cols] for rec in value])))
        elif isinstance(value, Mapping) and value:
            if all(isinstance(x, Mapping) for x in value.values()):
                # A record per name (a strategy, a scenario): one table, nested values as dotted columns.
                flat = {k: _flatten(rec) for k, rec in value.items()}
                cols = []
                for rec in flat.values():
                    cols.extend(k for k in rec if k not in cols)
                rows = [[k, *(rec.get(c) for c in cols)] for k, rec in flat.items()]
                out.append((name, md_table(["name", *cols], rows)))
            else:
                out.extend(generic_tables(value, name))
        elif isinstance(value, list) and value and all(_is_scalar(x) for x in value):
            out.append((name, md_table([name], [[x] for x in value])))
    return out


def _flatten(rec: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in rec.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        elif _is_scalar(v):
            out[key] = v
        elif isinstance(v, list) and all(_is_scalar(x) for x in v):
            out[key] = ", ".join(str(x) for x in v)
    return out


# -- plots -----------------------------------------------------------------------------------------------------
def _shade_incidents(ax: Any, world: Mapping[str, Any], label: bool) -> None:
    seen: set[str] = set()
    for w in world["incident_windows"]:
        name = w["name"]
        colour = INCIDENT_COLOURS.get(name, "#cccccc")
        end = min(w["end_h"], world["hours"])
        ax.axvspan(
            w["start_h"], end, color=colour, alpha=0.18, lw=0, label=name if label and name not in seen else None
        )
        seen.add(name)


def plot_simulation(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    world = doc["world"]
    series = doc["series"]
    minutes = doc["parameters"]["bucket_minutes"]
    buckets = len(next(iter(series.values()))["n"])
    hours = [(b + 0.5) * minutes / 60 for b in range(buckets)]
    processors = world["processors"]
    images = []

    fig, ax = plt.subplots(figsize=(13, 5.5))
    for name, run in series.items():
        rate = [r * 100 for r in run["authorization_rate"]]
        ax.plot(hours, rate, label=name, color=STRATEGY_COLOURS.get(name), lw=1.2)
    _shade_incidents(ax, world, label=True)
    ax.set_ylabel(f"authorization rate, % (per {minutes} min)")
    ax.set_xlabel("simulated hours")
    ax.set_xlim(0, world["hours"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8, ncol=4)
    ax.set_title(f"Routing simulation, seed {world['seed']}: {doc['parameters']['payments']:,} payments per run")
    path = RESULTS / "simulation_authorization.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    images.append(("Authorization rate over simulated time (first seed), incidents shaded", path.name))

    shares = [s for s in ("success_rate", "success_rate_warm", "per_country", "oracle") if s in series]
    fig, axes = plt.subplots(len(shares), 1, figsize=(13, 2.4 * len(shares)), sharex=True, squeeze=False)
    for ax2, name in zip(axes[:, 0], shares, strict=True):
        stack = [[0 if math.isnan(v) else v * 100 for v in series[name]["first_call_share"][p]] for p in processors]
        ax2.stackplot(hours, stack, labels=processors, alpha=0.85)
        _shade_incidents(ax2, world, label=False)
        ax2.set_ylabel(f"{name}\nfirst call, %", fontsize=8)
        ax2.set_ylim(0, 100)
        ax2.set_xlim(0, world["hours"])
    axes[0, 0].legend(loc="upper right", fontsize=7, ncol=len(processors))
    axes[0, 0].set_title("Which acquirer each run called first (incidents shaded)")
    axes[-1, 0].set_xlabel("simulated hours")
    path = RESULTS / "simulation_traffic.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    images.append(("Traffic share of the first call per acquirer", path.name))
    return images


def plot_overhead(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    runs = doc.get("runs") or []
    if not runs:
        return []
    fig, ax = plt.subplots(figsize=(10, 3.2))
    labels = [r["label"] for r in runs]
    y = range(len(runs))
    ax.barh([i + 0.2 for i in y], [r["p50_us"] for r in runs], height=0.4, label="p50")
    ax.barh([i - 0.2 for i in y], [r["p99_us"] for r in runs], height=0.4, label="p99")
    ax.set_yticks(list(y), labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("microseconds per create_payment (log scale)")
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="x")
    ax.set_title("Router overhead against the adapter called directly")
    path = RESULTS / "overhead_latency.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return [("create_payment latency by store, against the adapter alone", path.name)]


PLOTS = {"simulation": plot_simulation, "overhead": plot_overhead}


# -- the report ------------------------------------------------------------------------------------------------
def section(name: str, doc: Mapping[str, Any]) -> str:
    title = doc.get("title") or doc.get("benchmark") or name
    lines = [f"## {title}", ""]
    source = f"benchmarks/bench_{name}.py"
    lines.append(
        f"From [`{source}`]({Path(source).name}) → [`results/{name}.json`](results/{name}.json)"
        + (f", {doc['generated_at']}" if doc.get("generated_at") else "")
        + "."
    )
    lines.append("")
    if name in PLOTS:
        try:
            for caption, image in PLOTS[name](doc):
                lines += [f"![{caption}](results/{image})", "", f"*{caption}.*", ""]
        except (KeyError, ValueError, TypeError) as exc:
            lines += [f"(plot skipped: {type(exc).__name__}: {exc})", ""]
    if "tables" in doc:
        if doc.get("parameters"):
            params = ", ".join(f"{k} = {v}" for k, v in doc["parameters"].items() if _is_scalar(v))
            lines += [f"Parameters: {params}.", ""]
        for t in doc["tables"]:
            lines += [f"**{t['title']}**", "", md_table(t["columns"], t["rows"]), ""]
        verdict = doc.get("verdict")
        if verdict:
            lines += [
                "**Verdict as the benchmark printed it**",
                "",
                md_table(["key", "value"], list(verdict.items())),
                "",
            ]
    else:
        for t_title, md in generic_tables(doc):
            lines += [f"**{t_title}**", "", md, ""]
    return "\n".join(lines)


def main() -> int:
    docs: dict[str, Any] = {}
    for path in sorted(RESULTS.glob("*.json")):
        try:
            docs[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            print(f"skipping {path.name}: {exc}")
    names = [n for n in ORDER if n in docs] + sorted(n for n in docs if n not in ORDER)
    parts = [
        "# payroute benchmarks",
        "",
        "Written by `benchmarks/report.py` from `benchmarks/results/*.json`; every number below was printed by the"
        " benchmark named in its section (`make bench` runs them all, then this report).",
        "",
        "Contents: " + ", ".join(f"[{n}](#{_anchor(docs[n], n)})" for n in names),
        "",
    ]
    for n in names:
        parts.append(section(n, docs[n]))
    REPORT.write_text("\n".join(parts).rstrip() + "\n")
    print(f"wrote {REPORT.relative_to(HERE.parent)} ({len(names)} benchmarks)")
    return 0


def _anchor(doc: Mapping[str, Any], name: str) -> str:
    title = str(doc.get("title") or doc.get("benchmark") or name).lower()
    return "".join(c for c in title.replace(" ", "-") if c.isalnum() or c in "-_")


if __name__ == "__main__":
    raise SystemExit(main())
