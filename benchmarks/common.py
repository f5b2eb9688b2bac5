"""What every benchmark shares: command line, machine description, statistics, output.

A script builds a :class:`Report` (settings, printable table, raw results, ratios, notes)
and hands it to :func:`finish`, which prints the machine and the table and writes the
JSON. Full runs write to ``reports/benchmarks/<name>.json``; ``--smoke`` runs write to a
fresh temporary folder unless ``--out`` says otherwise, so they never overwrite the
committed reports.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of tables

from braintumor.reporting import provenance  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "data" / "splits" / "default.csv"
REPORTS = REPO / "reports" / "benchmarks"
SHARED_WEIGHTS = REPO.parent / "shared" / "weights"


# -- command line and data ----------------------------------------------------------------

def parser(description: str, runs: int = 5) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--smoke", action="store_true",
                   help="tiny input and one run, to check the script works (writes to a temp folder)")
    p.add_argument("--runs", type=int, default=None, help=f"repetitions (default {runs}; 1 with --smoke)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"folder for the JSON (default {REPORTS.relative_to(REPO)}/, a temp folder with --smoke)")
    p.add_argument("--data-dir", default=None,
                   help="dataset root (default $BRAINTUMOR_DATA_DIR)")
    p.set_defaults(default_runs=runs)
    return p


def parse(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if args.runs is None:  # smoke runs, and hour-long full runs (end_to_end --full), run once
        args.runs = 1 if args.smoke or getattr(args, "full", False) else args.default_runs
    return args


def dataset_root(data_dir: str | None) -> Path:
    """The dataset root from ``--data-dir`` or ``$BRAINTUMOR_DATA_DIR``; never downloads."""
    from braintumor.data.dataset import locate_dataset

    return locate_dataset(path=data_dir, allow_download=False)


def task_rows(task: str = "ct", split: str = "train"):
    """Rows of the committed split manifest for ``task`` and ``split``, with label ``y``
    (:func:`braintumor.study.load_split`, every row)."""
    from braintumor.config import Config
    from braintumor.study import load_split

    return load_split(Config(root=str(REPO)), split, task, per_class=None, progress=False).rows


def symlink_tree(links: dict[str, Path], dest: Path) -> Path:
    """Create ``dest/<relative name>`` → file for each entry; return ``dest``."""
    for rel, target in links.items():
        link = dest / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(target).resolve())
    return dest


@contextlib.contextmanager
def environ(**values: str):
    """Set environment variables for the duration of a block, then restore them."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- timing and statistics ----------------------------------------------------------------

def timed(fn, *args, **kwargs) -> tuple[float, object]:
    """``(seconds, result)`` of one call."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - t0, result


def stats(values) -> dict:
    """Median, min and max of a list of measurements (and the measurements themselves)."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "values": [round(v, 6) for v in values]}


def rates(count: int, seconds) -> list[float]:
    """Items per second for each of several timings of ``count`` items."""
    return [count / s for s in seconds]


def percentile(values, q: float) -> float:
    """The ``q``-th percentile (0–100), linear interpolation, as numpy's default."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def fmt(s: dict | None, digits: int = 1) -> str:
    """``median (min–max)`` of a :func:`stats` result."""
    if s is None:
        return "—"
    if s["n"] == 1:
        return f"{s['median']:.{digits}f}"
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def ratio(a: dict, b: dict) -> float:
    """Ratio of two medians."""
    return a["median"] / b["median"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)  # bytes on macOS, KiB on Linux


# -- the machine ----------------------------------------------------------------------------

CODE_PATHS = ("src", "benchmarks", "notebook.ipynb", "Makefile", "pyproject.toml", "requirements.txt")


def code_version() -> str:
    """The checkout's commit, with ``+changes`` when the code in the working tree (package,
    benchmarks, notebook, build files; not README or reports) differs from it."""
    return provenance.code_version(REPO, CODE_PATHS)


def machine() -> dict:
    """CPU, cores, RAM, GPUs and library versions: what the absolute numbers depend on."""
    return provenance.machine()


def describe(m: dict) -> str:
    gpu = ", ".join(m["gpus"]) if m["gpus"] else "none (CPU only)"
    return (f"CPU {m['cpu']}, {m['usable_cores']} usable of {m['logical_cores']} logical cores, "
            f"{m['ram_gb']} GB RAM; GPU: {gpu}\n"
            f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, Python {m['python']}, {m['os']}")


def other_processes(pattern: str = "braintumor", cpu_percent: float = 10.0) -> list[str]:
    """Other processes that compete for the CPU: any whose command line contains
    ``pattern`` (training jobs, say) and any using more than ``cpu_percent`` of a core
    over a one-second sample. This process, its ancestors (the shell that started it) and
    its children are left out. Anything listed makes absolute numbers meaningless.
    """
    import psutil

    me = psutil.Process()
    ours = {me.pid} | {p.pid for p in me.parents()} | {p.pid for p in me.children(recursive=True)}
    procs = [p for p in psutil.process_iter(["pid", "cmdline"]) if p.pid not in ours]
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)  # starts the sample
    time.sleep(1.0)
    found = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            cpu = proc.cpu_percent(None)
            cmd = " ".join(proc.info["cmdline"] or [])
            if pattern in cmd or cpu > cpu_percent:
                found.append(f"{proc.pid} ({cpu:.0f}% CPU) {cmd[:120]}")
    return found


# -- reporting ------------------------------------------------------------------------------

@dataclass
class Report:
    """One benchmark's output: printed as a table and written as JSON."""

    name: str
    title: str
    smoke: bool
    settings: dict
    headers: list[str] = field(default_factory=list)
    table: list[list[str]] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    ratios: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    invocation: str = ""  # how to re-run it, when not just `python -m benchmarks.<name>`

    def row(self, *cells) -> None:
        self.table.append([str(c) for c in cells])


def start(name: str, title: str, args: argparse.Namespace, **settings) -> Report:
    """A new report; records competing processes now, before the benchmark starts any."""
    report = Report(name, title, args.smoke, {"runs": args.runs, **settings})
    report.busy = other_processes()
    return report


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def finish(report: Report, out: Path | None) -> Path:
    """Print the machine, table, ratios and notes; write the JSON; return its path."""
    m = machine()
    print(f"\n== {report.title}{'  [SMOKE: tiny input, not a measurement]' if report.smoke else ''}")
    print(describe(m))
    if report.busy:
        print("WARNING: other processes were competing for the CPU; absolute numbers and ratios are "
              "unreliable:\n  " + "\n  ".join(report.busy))
    print()
    print(format_table(report.headers, report.table))
    for name, value in report.ratios.items():
        print(f"{name}: {value:.2f}x")
    for note in report.notes:
        print(f"note: {note}")
    out = out or (Path(tempfile.mkdtemp(prefix="braintumor-bench-")) if report.smoke else REPORTS)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{report.name}.json"
    payload = {
        "benchmark": report.name,
        "invocation": report.invocation or f"python -m benchmarks.{report.name}",
        "code": code_version(),
        "title": report.title,
        "smoke": report.smoke,
        "created": provenance.now_iso(),
        "machine": m,
        "other_processes_running": report.busy,
        "settings": report.settings,
        "table": {"headers": report.headers, "rows": report.table},
        "results": report.results,
        "ratios": report.ratios,
        "notes": report.notes,
    }
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path
