"""Command-line parsers for ``braintumor study …`` and ``braintumor compare`` (imports stay
lazy: TensorFlow loads only when a run starts)."""
from __future__ import annotations

import argparse


def _config(args):
    from ..cli import config_from_args

    return config_from_args(args)


def _study(args):
    from .runner import resolve_study_path
    from .spec import load_study

    cfg = _config(args)
    return load_study(resolve_study_path(args.study, cfg)), cfg


def cmd_run(args) -> int:
    from .runner import run_study

    study, cfg = _study(args)
    result = run_study(study, cfg, args.budget_minutes, args.only, verbose=args.verbose)
    print(f"{len(result['finished'])} run(s) finished, {result['remaining']} remaining"
          + (" (stopped for the time budget)" if result["stopped_for_budget"] else ""))
    return 0


def cmd_status(args) -> int:
    from .runner import status_table

    study, cfg = _study(args)
    rows = status_table(study, cfg)
    width = max(len(r["arm"]) for r in rows)
    print(f"study {study.name} ({study.path}): seeds {', '.join(map(str, study.seeds))}")
    print(f"{'arm':{width}s}  done  stale  missing")
    for r in rows:
        detail = "".join(f"  {k} seeds {','.join(map(str, r[k]))}" for k in ("stale", "missing") if r[k])
        print(f"{r['arm']:{width}s}  {len(r['done']):4d}  {len(r['stale']):5d}  {len(r['missing']):7d}{detail}")
    done = sum(len(r["done"]) for r in rows)
    total = sum(len(r["done"]) + len(r["stale"]) + len(r["missing"]) for r in rows)
    print(f"{done} of {total} runs done")
    return 0


def cmd_report(args) -> int:
    from .report import write_report

    study, cfg = _study(args)
    out = write_report(study, cfg, update_readme=args.update_readme)
    print(out["markdown"])
    for kind, path in out["paths"].items():
        print(f"wrote {path}")
    return 0


def cmd_study_compare(args) -> int:
    from .compare import compare_arms, markdown

    study, cfg = _study(args)
    result = compare_arms(study, args.arm_a, args.arm_b, cfg, args.resamples, args.bootstrap_seed, args.allow_mixed)
    print(f"seeds {', '.join(map(str, result['seeds']))}; differences combined over seeds")
    print(markdown(result))
    for p in result["paths"]:
        print(f"wrote {p}")
    return 0


def cmd_compare(args) -> int:
    from .compare import compare_runs, markdown

    cfg = _config(args)
    result = compare_runs(args.run_a, args.run_b, cfg, args.resamples, args.bootstrap_seed, args.name)
    print(markdown(result))
    for p in result["paths"]:
        print(f"wrote {p}")
    return 0


def _compare_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resamples", type=int, default=2000, help="paired bootstrap resamples (default: 2000)")
    p.add_argument("--seed", dest="bootstrap_seed", type=int, default=0, help="bootstrap seed (default: 0)")


def add_parsers(sub) -> None:
    """``braintumor study {run,status,report,compare}`` and ``braintumor compare``."""
    from ..cli import add_option

    study = sub.add_parser("study", help="a matched, multi-seed, resumable study (studies/*.toml)")
    actions = study.add_subparsers(dest="study_command", required=True)

    def action(name: str, help: str, func) -> argparse.ArgumentParser:
        p = actions.add_parser(name, help=help)
        p.add_argument("--study", help="study file (default: studies/main.toml)")
        add_option(p, "data_dir")
        p.set_defaults(func=func)
        return p

    p = action("run", "train + evaluate the runs whose result is missing or stale", cmd_run)
    p.add_argument("--budget-minutes", type=float, help="stop before a run that would not fit")
    p.add_argument("--only", nargs="+", metavar="ARM", help="only these arms")
    p.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2], help="Keras verbosity")
    action("status", "done / stale / missing runs per arm", cmd_status)
    p = action("report", "per arm: mean ± sd over seeds and pooled interval (reports/studies/<study>/summary.*)",
               cmd_report)
    p.add_argument("--update-readme", action="store_true",
                   help="rewrite README.md's block for the study (study for main, study-<name> for others)")
    p = action("compare", "two arms, seed by seed, paired on the same test rows", cmd_study_compare)
    p.add_argument("arm_a")
    p.add_argument("arm_b")
    p.add_argument("--allow-mixed", action="store_true", help="compare even if schedule or code differ")
    _compare_options(p)

    p = sub.add_parser("compare", help="paired differences of two evaluated runs on the same test rows "
                                       "(reports/comparisons/)")
    p.add_argument("run_a", help="run folder, report folder, metrics.json/predictions.csv or study record")
    p.add_argument("run_b")
    p.add_argument("--name", help="output name under reports/comparisons/ (default: from the two runs)")
    _compare_options(p)
    add_option(p, "evaluation.cluster")
    p.set_defaults(func=cmd_compare)
