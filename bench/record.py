"""Where a benchmark's figures go: ``bench/results/<name>.json``, then ``bench/RESULTS.md`` from all of them.

A figure quoted in a docstring goes stale unseen; one in a results file says
when, where and by which command it was measured, and the next run replaces it.
"""
import datetime
import json
import os
import platform
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from lm_app.atomic import write_text  # noqa: E402


def machine():
    """The CPU model and core count: figures from another machine do not compare."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count()}


def table(title, columns, rows):
    """One table of a result: ``rows`` are lists in the order of ``columns``."""
    return {"title": title, "columns": list(columns), "rows": [list(row) for row in rows]}


def add_argument(parser):
    """``--results DIR``: a trial run can write elsewhere than the figures the README cites."""
    parser.add_argument("--results", default=str(RESULTS), help="folder of the results files (default: %(default)s)")


def save(name, tables, figures, argv=None, results=RESULTS, script=None):
    """Write ``results/<name>.json`` atomically and regenerate the RESULTS.md beside ``results``."""
    argv = sys.argv[1:] if argv is None else argv
    record = {
        "bench": name,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "command": shlex.join(["python", f"bench/{script or name}.py", *argv]),
        "tables": tables,
        "figures": figures,
    }
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    write_text(results / f"{name}.json", json.dumps(record, indent=2) + "\n")  # in the order printed
    out = report.write(results)
    print(f"results: {results / f'{name}.json'}, {out}")
    return record
