"""Command-line interface: argument parsing only; the work happens in the modules.

    braintumor index               build (or load) the image index and print a summary
    braintumor audit-duplicates    duplicate groups, label conflicts, threshold comparison
    braintumor split               write the group-aware split manifest
    braintumor train --task ct     fine-tune a backbone and save model + model card
    braintumor study run|status|report|compare   the matched multi-seed study (studies/main.toml)
    braintumor compare RUN_A RUN_B paired differences of two runs on the same test rows

Options that set a :class:`~braintumor.config.Config` field are generated from the field
(:func:`add_option`), so their names, types, defaults and help cannot drift from it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .config import Config
from .errors import BrainTumorError


def _print_table(df, title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(df.to_string(index=False))


def add_option(parser: argparse.ArgumentParser, name: str, **overrides) -> None:
    """A command-line option for the :class:`Config` field ``name`` (``"audit.n_resamples"``
    for a nested one), with the field's help, type and default; an option left out keeps
    the Config's value. Booleans become a flag that flips their default."""
    section, _, field_name = name.rpartition(".")
    cls = type(getattr(Config(), section)) if section else Config
    f = next(f for f in dataclasses.fields(cls) if f.name == field_name)
    default = getattr(cls(), field_name)
    meta = dict(f.metadata)
    flag = meta.pop("flag", "--" + field_name.replace("_", "-"))
    kwargs: dict = {"dest": name, "default": argparse.SUPPRESS, "help": meta.pop("help", "")}
    if isinstance(default, bool):
        flag = flag if not default else "--no-" + field_name.replace("_", "-")
        kwargs.update(action="store_const", const=not default)
    else:
        shown = default not in (None, "") and not overrides.get("required")
        kwargs["help"] += f" (default: {default})" if shown else ""
        if isinstance(default, tuple):
            kwargs.update(type=type(default[0]), nargs="+")
        else:
            kwargs["type"] = meta.pop("type", type(default))
        if "choices" in meta:
            kwargs["choices"] = list(meta.pop("choices"))
    flag = overrides.pop("flag", flag)
    kwargs.update(overrides)
    if kwargs.get("action") == "store_const":
        for key in ("type", "nargs", "choices"):
            kwargs.pop(key, None)
    parser.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """``base`` (default ``Config()``) with every option that was given on the command line."""
    cfg = base or Config()
    changes: dict = {}
    for dest, value in vars(args).items():
        section, _, name = dest.rpartition(".")
        if section in ("audit", "evaluation"):
            changes.setdefault(section, {})[name] = tuple(value) if isinstance(value, list) else value
        elif name in Config.__dataclass_fields__ and not section:
            changes[name] = tuple(value) if isinstance(value, list) else value
    return cfg.replace(**changes)


def cmd_index(args) -> int:
    from .data.index import load_index, summarize

    t0 = time.perf_counter()
    df = load_index(config_from_args(args), rebuild=args.rebuild)
    elapsed = time.perf_counter() - t0
    _print_table(summarize(df), f"Index of {df.attrs['root']} (fingerprint {df.attrs['fingerprint']})")
    bad = df[df["status"] != "ok"]
    print(f"\n{len(df):,} images, {len(bad)} unreadable, {elapsed:.1f} s")
    for _, row in bad.iterrows():
        print(f"  unreadable: {row['path']}: {row['status']}")
    return 0


def cmd_audit_duplicates(args) -> int:
    from .data.duplicates import duplicate_report, threshold_comparison
    from .data.index import load_index

    cfg = config_from_args(args)
    df = load_index(cfg)
    report = duplicate_report(df)
    print(f"{report['n_images']:,} images in {report['n_groups']:,} duplicate groups "
          f"(identical SHA-256 or pHash distance <= {cfg.phash_threshold})")
    print(f"{report['images_in_groups_size_gt1']:,} images share a group with another image, "
          f"in {report['n_groups_size_gt1']:,} groups; the largest holds {report['largest_group']}")
    import pandas as pd

    by_class = pd.DataFrame([{"class": k, **v} for k, v in report["by_class"].items()])
    _print_table(by_class, "Images in duplicate groups, per class:")
    for key, title in (("label_conflict_groups", "Label conflicts (excluded from splits)"),
                       ("cross_modality_groups", "Groups spanning CT and MRI")):
        print(f"\n{title}: {len(report[key])}")
        for g in report[key]:
            print(f"  {g['group']}: " + " | ".join(g["paths"]))
    comparison = threshold_comparison(df, args.thresholds)
    _print_table(comparison, "Effect of a looser pHash threshold:")
    report["threshold_comparison"] = comparison.to_dict(orient="records")
    out = Path(args.out) if args.out else cfg.reports_path / "audit" / "duplicates.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def cmd_split(args) -> int:
    from .data.index import load_index
    from .data.splits import (MANIFEST_COLUMNS, check_fractions, check_no_group_leak, group_aware_split,
                         label_conflict_groups, read_manifest, split_summary, write_manifest)

    cfg = config_from_args(args)
    check_fractions(cfg.split_fractions)  # before the (slow) index, so the error is the only output
    df = load_index(cfg)
    manifest = group_aware_split(df, cfg.split_fractions, seed=cfg.seed)
    check_no_group_leak(manifest)
    if args.check:
        committed = read_manifest(cfg.manifest_path)
        fresh = manifest[MANIFEST_COLUMNS].sort_values("path").reset_index(drop=True).astype(str)
        if not fresh.equals(committed[MANIFEST_COLUMNS].reset_index(drop=True)):
            print(f"error: the split regenerated from the data differs from {cfg.manifest_path}",
                  file=sys.stderr)
            return 1
        print(f"{cfg.manifest_path} matches the split regenerated from the data "
              f"({len(manifest):,} images, seed {cfg.seed})")
        return 0
    path = write_manifest(manifest, Path(args.out) if args.out else cfg.manifest_path)
    _print_table(split_summary(manifest), f"Split (seed {cfg.seed}, fractions {cfg.split_fractions}):")
    excluded = df[~df["path"].isin(manifest["path"])]
    print(f"\n{len(manifest):,} of {len(df):,} images assigned; {len(excluded)} excluded "
          f"({len(label_conflict_groups(df))} label-conflict groups, "
          f"{int((df['status'] != 'ok').sum())} unreadable):")
    for _, row in excluded.iterrows():
        print(f"  excluded: {row['path']} ({row['label']}, group {row['group']})")
    print(f"wrote {path}")
    return 0


def cmd_train(args) -> int:
    from .training import train

    cfg = config_from_args(args)
    if args.epochs is not None:
        cfg = cfg.replace(epochs_finetune=args.epochs)
    if cfg.quick and args.epochs is None:
        cfg = cfg.replace(epochs_frozen=min(cfg.epochs_frozen, 20), epochs_finetune=min(cfg.epochs_finetune, 1))
    run_dir = train(cfg, verbose=args.verbose)
    print(f"model folder: {run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run, report_dir
    from .inference import resolve_run
    from .metrics import format_ci

    cfg = config_from_args(args)
    report = evaluate_run(resolve_run(args.model), cfg, figures=not args.no_figures)
    m = report["test"]["metrics"]
    print(f"{report['task']} — {report['run_id']} — test n={report['test']['n_images']} "
          f"({report['test']['n_groups']} duplicate groups), 95% CI by group bootstrap")
    for name in ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc",
                 "specificity_at_sensitivity", "macro_f1", "macro_auc_ovr", "ece"):
        if name in m:
            print(f"  {name:28s} {format_ci(**m[name])}")
    cal = report["calibration"]
    print(f"  temperature {cal['temperature']:.3f}; ECE test {cal['test_ece_before']:.4f} -> "
          f"{cal['test_ece_after']:.4f}")
    if report["threshold"]:
        t = report["threshold"]
        print(f"  threshold {t['threshold']:.4f} ({t['rule']}, chosen on validation)")
    print(f"wrote {report_dir(cfg, {'task': report['task'], 'preprocess': report['preprocess']})}/metrics.json")
    if not args.no_ood:
        from .ood import fit_ood

        run = resolve_run(args.model)
        _print_ood(run, fit_ood(run, cfg, progress=False))
    return 0


def cmd_evaluate_external(args) -> int:
    from .external import Options, evaluate_external, parse_label_map, report_dir
    from .inference import resolve_run
    from .metrics import format_ci

    cfg = config_from_args(args)
    run = resolve_run(args.model)
    opts = Options(args.name, parse_label_map(args.label_map), args.group_col, args.strata or [], args.label_col,
                   args.resamples, similarity=args.dup_similarity, workers=args.workers,
                   figures=not args.no_figures, progress=not args.no_progress)
    r = evaluate_external(run, args.data, opts, cfg)
    ex, m = r["exclusions"], r["test"]["metrics"]
    print(f"{r['set']} — {r['model']['task']}/{r['model']['run_id']}: {ex['n_kept']} of {ex['n_images']} images "
          f"kept (overlap {sum(ex['overlap'].values())}, other modality {sum(ex['modality']['excluded'].values())}); "
          f"95% CI by {'group (' + r['inputs']['group_col'] + ')' if r['inputs']['group_col'] else 'image'} bootstrap")
    for name in ("roc_auc", "sensitivity", "specificity", "accuracy", "macro_auc_ovr"):
        if name in m:
            print(f"  {name:28s} {format_ci(**m[name])}")
    w = r.get("within_group_auc")
    if w and w["n_groups"]:
        print(f"  within-group AUC ({w['n_groups']} groups): median {w['median']:.3f}, mean {format_ci(**w['mean'])}")
    print(f"wrote {report_dir(cfg, args.name, run)}/metrics.json")
    return 0


def cmd_predict(args) -> int:
    from .inference import Predictor, expand_inputs, resolve_run, volumes_path, write_results

    paths = expand_inputs(args.paths)
    if not paths:
        print(f"error: no image or scan files found in {args.paths}", file=sys.stderr)
        return 2
    predictor = Predictor.load(resolve_run(args.model))
    df = predictor.predict_paths(paths, batch_size=args.batch_size, progress=not args.no_progress,
                                 workers=args.workers)
    if args.gradcam:
        from .inference import write_gradcams

        write_gradcams(predictor, df, args.gradcam)
    volumes = df.attrs.get("volumes")
    if args.out:
        print(f"wrote {write_results(df, args.out)}")
        if volumes is not None and len(volumes):
            print(f"wrote {write_results(volumes, volumes_path(args.out))}")
    else:
        print(df.to_csv(index=False), end="")
    if volumes is not None and len(volumes):  # on stderr when stdout carries the CSV
        print("\nPer series / volume:\n" + volumes.to_string(index=False),
              file=sys.stdout if args.out else sys.stderr)
    for note in df.attrs.get("notes", []):
        print(f"note: {note}", file=sys.stderr)
    flagged = df[df["warning"].astype(str) != ""]
    for _, row in flagged.iterrows():
        where = row["path"] + (f" [{row['slice']}]" if row["slice"] else "")
        print(f"warning: {where}: {row['warning']}", file=sys.stderr)
    failed = int((df["error"] != "").sum())
    if failed:
        print(f"{failed} of {len(df)} file(s) could not be read (see the error column)", file=sys.stderr)
    return 1 if failed else 0


def cmd_fit_ood(args) -> int:
    from .inference import resolve_run
    from .ood import fit_ood

    run = resolve_run(args.model)
    summary = fit_ood(run, config_from_args(args), progress=not args.no_progress)
    _print_ood(run, summary)
    return 0


def _print_ood(run, summary: dict) -> None:
    mod = summary["modality"]
    print(f"out-of-distribution check for {run}: threshold {summary['threshold']:.2f} (keeps "
          f"{summary['val_keep_rate']:.1%} of {summary['n_val']} validation images; fitted on "
          f"{summary['n_train']} training images, {summary['feature_dim']} features)")
    print(f"modality check: CT vs MRI validation accuracy {mod['val_accuracy']:.1%}, "
          f"'other' for {mod['val_other_rate']:.1%} of validation images; wrote {run}/{summary['file']}")


def cmd_results(args) -> int:
    from .reporting.readme import results_table, update_readme

    cfg = config_from_args(args)
    if args.update_readme:
        changed = update_readme(cfg.root_path / "README.md", cfg.reports_path)
        print(f"README.md results table {'updated' if changed else 'already up to date'}")
    else:
        print(results_table(cfg.reports_path))
    return 0


def cmd_audit_shortcuts(args) -> int:
    from .audit.figures import mitigation_examples, plot_mitigation_examples, plot_probes
    from .audit.probes import probe_table, run_audit, write_report
    from .reporting import plots
    from .study import load_split

    cfg = config_from_args(args)
    report = run_audit(cfg)
    out = Path(args.out) if args.out else cfg.reports_path / "audit"
    _print_table(probe_table(report), "Test accuracy / AUC [95% CI], raw vs crop-mask:")
    counts = report["text_detection"]["per_class"]
    print("\nburned-in text detected: " + ", ".join(
        f"{k} {v['with_text']}/{v['images']}" for k, v in counts.items()))
    print(f"wrote {write_report(report, out / 'shortcuts.json')}")
    print(f"wrote {plots.save(plot_probes(report), out / 'shortcuts.png')}")
    if not args.no_examples:
        test = load_split(cfg, "test", "pooled", per_class=None, progress=False)
        panels = mitigation_examples(test.root, test.rows, seed=cfg.seed)
        print(f"wrote {plots.save(plot_mitigation_examples(panels), out / 'mitigation_examples.png')}")
    return 0


def cmd_audit_sources(args) -> int:
    from .audit.probes import write_report
    from .audit.sources import run_source_audit, source_tables

    cfg = config_from_args(args)
    report = run_source_audit(cfg, args.sources)
    out = Path(args.out) if args.out else cfg.reports_path / "audit" / "sources.json"
    print(source_tables(report))
    print(f"wrote {write_report(report, out)}")
    return 0


def cmd_compare_recipes(args) -> int:
    from .reporting.recipes import compare_recipes, recipe_table, write_recipe_report

    cfg = config_from_args(args)
    report = compare_recipes(cfg.reports_path, cfg.models_path, args.task, args.preprocess, args.a, args.b,
                             tuple(args.sets), args.resamples)
    print(recipe_table(report))
    for path in write_recipe_report(report, cfg.reports_path / "comparisons"):
        print(f"wrote {path}")
    return 0


def _subcommand(sub, name: str, help: str, func, data: bool = True) -> argparse.ArgumentParser:
    """A subcommand; ``data`` ones take ``--data-dir`` and ``--split-name``."""
    p = sub.add_parser(name, help=help)
    if data:
        add_option(p, "data_dir")
        add_option(p, "split_name")
    p.set_defaults(func=func)
    return p


def _train_options(p: argparse.ArgumentParser) -> None:
    from .data.tasks import TASKS

    add_option(p, "task", required=True, choices=sorted(TASKS))
    add_option(p, "backbone")
    add_option(p, "weights", flag="--random-weights", action="store_const", const=None,
               help="random initialisation instead of ImageNet")
    add_option(p, "quick")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (same as --epochs-finetune)")
    from .recipes import available, describe

    for name in ("epochs_frozen", "epochs_finetune", "image_size", "batch_size", "lr_frozen", "lr_finetune",
                 "finetune_fraction", "preprocess", "lesion_copies", "augment", "seed"):
        add_option(p, name)
    add_option(p, "recipe", help="training recipe, or several joined by '+': none; "
               + "; ".join(describe(r) for r in available()[1:]) + " (default: none)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description="Brain tumour detection in CT and MRI (research only, not for clinical use).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _subcommand(sub, "index", "build or load the image index and print a summary", cmd_index)
    p.add_argument("--rebuild", action="store_true", help="ignore the cache")

    p = _subcommand(sub, "audit-duplicates", "report duplicate groups and label conflicts", cmd_audit_duplicates)
    p.add_argument("--thresholds", type=int, nargs="+", default=[0, 2, 4],
                   help="pHash Hamming thresholds to compare (default: 0 2 4)")
    p.add_argument("--out", help="JSON report path (default: reports/audit/duplicates.json)")

    p = _subcommand(sub, "split", "write the group-aware train/val/test manifest", cmd_split)
    add_option(p, "seed")
    add_option(p, "split_fractions", nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--out", help="manifest path (overrides --split-name)")
    p.add_argument("--check", action="store_true",
                   help="regenerate and compare with the committed manifest instead of writing")

    _train_options(_subcommand(sub, "train", "two-phase transfer learning for one task", cmd_train))

    p = _subcommand(sub, "evaluate", "calibrate + threshold on validation, report on test", cmd_evaluate)
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    for name in ("rule", "target", "n_resamples", "cluster"):
        add_option(p, "evaluation." + name)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-ood", action="store_true",
                   help="skip fitting the out-of-distribution/modality checks (braintumor fit-ood)")

    p = _subcommand(sub, "fit-ood", "fit the out-of-distribution and CT/MRI checks predict applies "
                    "(writes <run>/ood.npz and the card's ood entry)", cmd_fit_ood)
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    add_option(p, "batch_size")
    p.add_argument("--no-progress", action="store_true")

    p = _subcommand(sub, "evaluate-external", "a trained run on an external test set (evaluation only; "
                    "reports/external/<name>/<run>/)", cmd_evaluate_external)
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    p.add_argument("--data", required=True, help="folder with one sub-folder per class, or a CSV with path "
                   "(relative to the CSV) and label columns")
    p.add_argument("--name", required=True, help="name of the set (report folder reports/external/<name>/)")
    p.add_argument("--label-map", nargs="+", metavar="CLASS=NAME",
                   help="data label names for the model's classes, e.g. healthy=no_tumor,tumor=yes; -=NAME drops NAME")
    p.add_argument("--label-col", default="label", help="CSV column with the labels (default: label)")
    p.add_argument("--group-col", help="CSV column grouping images (patient) for the bootstrap and within-group AUC")
    p.add_argument("--strata", nargs="+", metavar="COL[:EDGES]",
                   help="CSV columns to break results down by, e.g. mask_pixels:1000,4000 subtype")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--dup-similarity", type=float, help="feature cosine similarity that counts as overlap with "
                   "a training image (default: calibrated on known near-duplicate training pairs)")
    p.add_argument("--workers", type=int, help="processes decoding images (default: all cores)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")

    p = _subcommand(sub, "predict", "run a trained model on your own images", cmd_predict, data=False)
    p.add_argument("paths", nargs="+", help="image files, DICOM files or series folders, NIfTI volumes, folders or globs")
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    p.add_argument("--out", help="results file (.csv or .json); default: CSV to stdout")
    p.add_argument("--gradcam", metavar="DIR", help="also write Grad-CAM overlays here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None,
                   help="processes decoding and preprocessing files (default: every core)")
    p.add_argument("--no-progress", action="store_true")

    p = _subcommand(sub, "audit-shortcuts", "shortcut and leakage probes, raw vs crop-mask "
                    "(reports/audit/shortcuts.*)", cmd_audit_shortcuts)
    add_option(p, "audit.tasks", choices=["ct", "mri"])
    add_option(p, "backbone", help="frozen feature extractor")
    for name in ("image_size", "seed", "audit.n_resamples", "audit.n_permutations", "audit.limit_per_class",
                 "audit.workers"):
        add_option(p, name)
    p.add_argument("--out", help="output folder (default: reports/audit)")
    p.add_argument("--no-examples", action="store_true", help="skip the mitigation example figure")

    p = _subcommand(sub, "audit-sources", "class mix, within-source and leave-one-source-out probes "
                    "(reports/audit/sources.json)", cmd_audit_sources)
    p.add_argument("--sources", help="CSV of path,source (default: mri_sources.csv beside the dataset folder)")
    add_option(p, "audit.tasks", choices=["ct", "mri"])
    for name in ("seed", "audit.n_resamples", "audit.limit_per_class"):
        add_option(p, name)
    p.add_argument("--out", help="report path (default: reports/audit/sources.json)")

    p = _subcommand(sub, "compare-recipes", "paired differences between two training recipes on the "
                    "external sets, seed by seed (reports/comparisons/recipes-*)", cmd_compare_recipes, data=False)
    p.add_argument("--task", default="mri")
    p.add_argument("--preprocess", default="crop-mask")
    p.add_argument("--a", default="none", help="baseline recipe (default: none)")
    p.add_argument("--b", default="lesions", help="recipe compared with it (default: lesions)")
    p.add_argument("--sets", nargs="+", default=["lgg-flair-a", "sartaj"], help="external sets")
    p.add_argument("--resamples", type=int, default=2000)

    from . import serve  # light: Streamlit and TensorFlow load only when the app starts

    serve.add_parser(sub)

    from .studies import cli as studies_cli  # study run/status/report/compare, compare

    studies_cli.add_parsers(sub)

    p = _subcommand(sub, "results", "the results table from reports/*/metrics.json", cmd_results, data=False)
    p.add_argument("--update-readme", action="store_true", help="rewrite README.md's results block")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BrainTumorError, ValueError) as e:  # bad input or settings: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
