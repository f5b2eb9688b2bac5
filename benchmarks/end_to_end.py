"""Wall time of the documented entry points, run as shell commands.

Default (quick path): ``braintumor train --task ct --quick`` then ``braintumor evaluate
--model models/ct``, each run in a fresh temporary project folder holding only the
committed split manifest, so nothing in the checkout changes and every run starts cold
(decoding, EfficientNet-Lite0 conversion) as on a fresh clone.

``--full`` times ``make reproduce`` in the checkout itself (index, audit, split check,
train and evaluate each task: about an hour on 2 CPU cores; it rewrites models/ and
reports/ exactly as ``make reproduce`` does). ``--command`` times any commands instead.
Run: ``python -m benchmarks.end_to_end [--smoke | --full] [--command CMD ...]``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common


def braintumor_cli() -> str:
    """The ``braintumor`` script beside this interpreter (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / "braintumor"
    return str(local) if local.is_file() else (shutil.which("braintumor") or "braintumor")


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


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="time `make reproduce` in the checkout (about an hour)")
    p.add_argument("--command", action="append", dest="commands", metavar="CMD",
                   help="a shell command to time (repeatable); replaces the defaults")
    p.add_argument("--in-place", action="store_true",
                   help="run in the checkout instead of a fresh temporary project folder")
    args = common.parse(p, argv)
    cli = braintumor_cli()
    if args.smoke:
        commands, mode = [f"{sys.executable} -c pass"], "smoke"
    elif args.commands:
        commands, mode = args.commands, "custom"
    elif args.full:
        commands, mode, args.in_place = ["make reproduce"], "full", True
    else:
        commands, mode = [f"{cli} train --task ct --quick", f"{cli} evaluate --model models/ct"], "quick"

    env = dict(os.environ)
    if args.data_dir:
        env["BRAINTUMOR_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    logs = Path(tempfile.mkdtemp(prefix="end_to_end-logs-", dir=args.out))  # never inside reports/ by default
    report = common.start("end_to_end", f"End to end: wall time ({mode})", args, mode=mode,
                          commands=commands, in_place=args.in_place, logs=str(logs))
    seconds: dict[str, list[float]] = {c: [] for c in commands}
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
            totals.append(sum(v[-1] for v in seconds.values()))
        print(f"run {run + 1}/{args.runs}: {totals[-1]:.1f}s (log {log})", flush=True)

    report.results = {"seconds": {c: common.stats(v) for c, v in seconds.items()},
                      "total_seconds": common.stats(totals)}
    report.headers = ["command", "seconds median (min–max)", "minutes (median)"]
    for command, values in seconds.items():
        s = common.stats(values)
        report.row(command.replace(cli, "braintumor"), common.fmt(s), f"{s['median'] / 60:.1f}")
    total = report.results["total_seconds"]
    report.row("total", common.fmt(total), f"{total['median'] / 60:.1f}")
    where = ("in the checkout" if args.in_place else
             "each run in a fresh temporary project folder (committed manifest only: cold caches)")
    report.notes += [f"{args.runs} run(s), {where}; command output in {logs}."]
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
