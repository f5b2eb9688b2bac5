"""Wall time of ``make reproduce``: QUICK mode (default) and full mode, run as shell commands.

* default: ``make reproduce QUICK=1`` in the checkout: the whole study (index, duplicate
  audit, split check, train + evaluate CT and MRI, shortcut audit, notebook) on small
  stratified subsets. The Makefile sends its models and reports to a scratch project folder
  that links the checkout's caches (index, decoded images, converted weights), so runs after
  the first start warm and the study's results are left alone.
* ``--full`` times ``make reproduce`` itself (about 3 hours on 2 CPU cores; it rewrites
  models/, reports/, the notebook and README exactly as ``make reproduce`` does).
* ``--command`` times any shell commands instead, each run in a fresh temporary project
  folder holding only the committed split manifest (cold caches), unless ``--in-place``.

Each mode writes its own report (``end_to_end_quick.json``, ``end_to_end_full.json``,
``end_to_end.json`` for custom commands and ``--smoke``).
Run: ``python -m benchmarks.end_to_end [--smoke | --full] [--command CMD ...]``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common


def fresh_project(dest: Path) -> Path:
    """An empty project folder with the committed split manifest."""
    splits = dest / "data" / "splits"
    splits.mkdir(parents=True)
    shutil.copy2(common.MANIFEST, splits / common.MANIFEST.name)
    return dest


def run_command(command: str, cwd: Path, env: dict, log: Path) -> float:
    """Seconds ``command`` took in bash; raise with the log's tail if it failed."""
    with open(log, "a") as out:
        out.write(f"$ {command}\n")
        out.flush()
        t0 = time.perf_counter()
        code = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, stdout=out,
                              stderr=subprocess.STDOUT).returncode
        seconds = time.perf_counter() - t0
    if code:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise SystemExit(f"`{command}` failed with exit code {code} (log {log}):\n{tail}")
    return seconds


TRACE = re.compile(r"^\+ \[(\d+\.\d+)\] (.*)$")


def traced_steps(log: str, end: float) -> list[tuple[str, float]]:
    """Seconds per step of ``make reproduce`` from its ``set -x`` trace, whose lines the
    Makefile stamps with ``$EPOCHREALTIME``; the step after the last stamp (the notebook)
    runs until ``end`` (epoch seconds)."""
    stamps = [(float(m[1]), m[2]) for m in map(TRACE.match, log.splitlines()) if m]
    steps = []
    for (t, command), (t_next, _) in zip(stamps, stamps[1:] + [(end, "")]):
        if command.startswith("for "):
            continue
        label = re.sub(r"\S*/bin/", "", command)  # the venv's scripts, by name
        label = re.sub(r"(--model )\S*?(models/)", r"\1\2", label)  # scratch folders differ per run
        label = "make notebook" if label == ": notebook next" else label
        steps.append((label, t_next - t))
    return steps


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="time `make reproduce` in the checkout (about 3 hours)")
    p.add_argument("--command", action="append", dest="commands", metavar="CMD",
                   help="a shell command to time (repeatable); replaces the defaults")
    p.add_argument("--in-place", action="store_true",
                   help="run in the checkout instead of a fresh temporary project folder")
    args = common.parse(p, argv)
    name, invocation = "end_to_end", ""
    if args.smoke:
        commands, mode = [f"{sys.executable} -c pass"], "smoke"
    elif args.commands:
        commands, mode = args.commands, "custom"
    elif args.full:
        commands, mode, args.in_place = ["make reproduce"], "full", True
        name, invocation = "end_to_end_full", "python -m benchmarks.end_to_end --full"
    else:
        commands, mode, args.in_place = ["make reproduce QUICK=1"], "quick", True
        name, invocation = "end_to_end_quick", "python -m benchmarks.end_to_end"

    env = dict(os.environ)
    if args.data_dir:
        env["BRAINTUMOR_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="end_to_end-logs-", dir=args.out))  # never inside reports/ by default
    report = common.start(name, f"End to end: wall time of {' && '.join(commands)} ({mode})", args, mode=mode,
                          commands=commands, in_place=args.in_place, logs=str(logs))
    report.invocation = invocation
    seconds: dict[str, list[float]] = {c: [] for c in commands}
    steps: dict[str, list[float]] = {}  # per traced step of `make reproduce`
    totals = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-end-to-end-") as tmp:
            if args.in_place:
                cwd, run_env = common.REPO, env
            else:
                cwd = fresh_project(Path(tmp) / "project")
                run_env = env | {"BRAINTUMOR_ROOT": str(cwd)}
            log = logs / f"run-{run + 1}.log"
            for command in commands:
                seconds[command].append(run_command(command, cwd, run_env, log))
            for label, value in traced_steps(log.read_text(), time.time()):
                steps.setdefault(label, []).append(value)
            totals.append(sum(v[-1] for v in seconds.values()))
        print(f"run {run + 1}/{args.runs}: {totals[-1]:.1f}s (log {log})", flush=True)

    report.results = {"seconds": {c: common.stats(v) for c, v in seconds.items()},
                      "steps_seconds": {k: common.stats(v) for k, v in steps.items()},
                      "total_seconds": common.stats(totals)}
    report.headers = ["command", "seconds median (min–max)", "minutes (median)"]
    for command, values in seconds.items():
        s = common.stats(values)
        report.row(command, common.fmt(s), f"{s['median'] / 60:.1f}")
    for label, values in steps.items():
        s = common.stats(values)
        report.row(f"· {label}", common.fmt(s), f"{s['median'] / 60:.1f}")
    total = report.results["total_seconds"]
    report.row("total", common.fmt(total), f"{total['median'] / 60:.1f}")
    where = {"quick": "in the checkout; the Makefile puts models and reports in a scratch folder "
                      "linking the checkout's caches (warm after the first run)",
             "full": "in the checkout (rewrites models/, reports/, notebook and README)"}.get(
        mode, "in the checkout" if args.in_place else
        "each run in a fresh temporary project folder (committed manifest only: cold caches)")
    report.notes += [f"{args.runs} run(s), {where}; command output in {logs}."]
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
