"""``braintumor compare-recipes`` and ``results``: tables from the written reports."""
from __future__ import annotations

from .options import config_from_args, subcommand


def cmd_compare_recipes(args) -> int:
    from ..reporting.recipes import compare_recipes, recipe_table, write_recipe_report

    cfg = config_from_args(args)
    report = compare_recipes(cfg.reports_path, cfg.models_path, args.task, args.preprocess, args.a, args.b,
                             tuple(args.sets), args.resamples)
    print(recipe_table(report))
    for path in write_recipe_report(report, cfg.reports_path / "comparisons"):
        print(f"wrote {path}")
    return 0


def cmd_results(args) -> int:
    from ..reporting.readme import results_table, update_readme

    cfg = config_from_args(args)
    if args.update_readme:
        changed = update_readme(cfg.root_path / "README.md", cfg.reports_path)
        print(f"README.md results table {'updated' if changed else 'already up to date'}")
    else:
        print(results_table(cfg.reports_path))
    return 0


def add_compare_recipes_parser(sub) -> None:
    p = subcommand(sub, "compare-recipes", "paired differences between two training recipes on the "
                   "external sets, seed by seed (reports/comparisons/recipes-*)", cmd_compare_recipes, data=False)
    p.add_argument("--task", default="mri")
    p.add_argument("--preprocess", default="crop-mask")
    p.add_argument("--a", default="none", help="baseline recipe (default: none)")
    p.add_argument("--b", default="lesions", help="recipe compared with it (default: lesions)")
    p.add_argument("--sets", nargs="+", default=["lgg-flair-a", "sartaj"], help="external sets")
    p.add_argument("--resamples", type=int, default=2000)


def add_results_parser(sub) -> None:
    p = subcommand(sub, "results", "the results table from reports/*/metrics.json", cmd_results, data=False)
    p.add_argument("--update-readme", action="store_true", help="rewrite README.md's results block")
