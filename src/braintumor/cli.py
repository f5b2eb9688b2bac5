"""Command-line interface: argument parsing only; the work happens in the modules.

    braintumor index               build (or load) the image index and print a summary
    braintumor audit-duplicates    duplicate groups, label conflicts, threshold comparison
    braintumor split               write the group-aware split manifest
    braintumor train --task ct     fine-tune a backbone and save model + model card
"""
from __future__ import annotations

import argparse
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


def _config(args: argparse.Namespace, **overrides) -> Config:
    cfg = Config()
    if getattr(args, "data_dir", None):
        cfg = cfg.replace(data_dir=args.data_dir)
    if getattr(args, "split_name", None):
        cfg = cfg.replace(split_name=args.split_name)
    return cfg.replace(**overrides)


def cmd_index(args) -> int:
    from .index import load_index, summarize

    t0 = time.perf_counter()
    df = load_index(_config(args), rebuild=args.rebuild)
    elapsed = time.perf_counter() - t0
    _print_table(summarize(df), f"Index of {df.attrs['root']} (fingerprint {df.attrs['fingerprint']})")
    bad = df[df["status"] != "ok"]
    print(f"\n{len(df):,} images, {len(bad)} unreadable, {elapsed:.1f} s")
    for _, row in bad.iterrows():
        print(f"  unreadable: {row['path']}: {row['status']}")
    return 0


def cmd_audit_duplicates(args) -> int:
    from .duplicates import duplicate_report, threshold_comparison
    from .index import load_index

    cfg = _config(args)
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
    from .index import load_index
    from .splits import (MANIFEST_COLUMNS, check_fractions, check_no_group_leak, group_aware_split,
                         label_conflict_groups, read_manifest, split_summary, write_manifest)

    check_fractions(args.fractions)  # before the (slow) index, so the error is the only output
    cfg = _config(args, seed=args.seed, split_fractions=tuple(args.fractions))
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

    cfg = _config(args, task=args.task, backbone=args.backbone, quick=args.quick, seed=args.seed)
    if args.random_weights:
        cfg = cfg.replace(weights=None)
    for field in ("image_size", "batch_size", "epochs_frozen", "epochs_finetune", "lr_frozen",
                  "lr_finetune", "finetune_fraction", "preprocess"):
        value = getattr(args, field)
        if value is not None:
            cfg = cfg.replace(**{field: value})
    if args.epochs is not None:
        cfg = cfg.replace(epochs_finetune=args.epochs)
    if args.no_augment:
        cfg = cfg.replace(augment=False)
    if cfg.quick and args.epochs is None:
        cfg = cfg.replace(epochs_frozen=min(cfg.epochs_frozen, 20), epochs_finetune=min(cfg.epochs_finetune, 1))
    run_dir = train(cfg, verbose=args.verbose)
    print(f"model folder: {run_dir}")
    return 0


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run, report_dir
    from .inference import resolve_run
    from .metrics import format_ci

    cfg = _config(args)
    report = evaluate_run(resolve_run(args.model), cfg, rule=args.rule, target=args.target,
                          n_resamples=args.resamples, figures=not args.no_figures)
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
    return 0


def cmd_predict(args) -> int:
    from .inference import Predictor, expand_inputs, resolve_run, write_results

    paths = expand_inputs(args.paths)
    if not paths:
        print(f"error: no image files found in {args.paths}", file=sys.stderr)
        return 2
    predictor = Predictor.load(resolve_run(args.model))
    df = predictor.predict_paths(paths, batch_size=args.batch_size, progress=not args.no_progress)
    if args.gradcam:
        from .inference import write_gradcams

        write_gradcams(predictor, df, args.gradcam)
    if args.out:
        print(f"wrote {write_results(df, args.out)}")
    else:
        print(df.to_csv(index=False), end="")
    failed = int((df["error"] != "").sum())
    if failed:
        print(f"{failed} of {len(df)} file(s) could not be read (see the error column)", file=sys.stderr)
    return 1 if failed else 0


def cmd_results(args) -> int:
    from .evaluate import results_table, update_readme

    cfg = _config(args)
    if args.update_readme:
        changed = update_readme(cfg.root_path / "README.md", cfg.reports_path)
        print(f"README.md results table {'updated' if changed else 'already up to date'}")
    else:
        print(results_table(cfg.reports_path))
    return 0


def cmd_audit_shortcuts(args) -> int:
    from . import plots
    from .data import locate_dataset
    from .probes import (ProbeSettings, mitigation_examples, plot_mitigation_examples, plot_probes,
                         probe_table, run_audit, write_report)
    from .splits import read_manifest

    cfg = _config(args)
    settings = ProbeSettings(tasks=tuple(args.tasks), backbone=args.backbone, image_size=args.image_size,
                             seed=args.seed, n_resamples=args.resamples,
                             limit_per_class=args.limit_per_class, workers=args.workers)
    report = run_audit(cfg, settings)
    out = Path(args.out) if args.out else cfg.reports_path / "audit"
    _print_table(probe_table(report), "Test accuracy / AUC [95% CI], raw vs crop-mask:")
    counts = report["text_detection"]["per_class"]
    print("\nburned-in text detected: " + ", ".join(
        f"{k} {v['with_text']}/{v['images']}" for k, v in counts.items()))
    print(f"wrote {write_report(report, out / 'shortcuts.json')}")
    print(f"wrote {plots.save(plot_probes(report), out / 'shortcuts.png')}")
    if not args.no_examples:
        manifest = read_manifest(cfg.manifest_path)
        test = manifest[(manifest["split"] == "test") & manifest["modality"].isin(["CT", "MRI"])]
        panels = mitigation_examples(locate_dataset(config=cfg), test, seed=args.seed)
        print(f"wrote {plots.save(plot_mitigation_examples(panels), out / 'mitigation_examples.png')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description="Brain tumour detection in CT and MRI (research only, not for clinical use).")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_data_args(p):
        p.add_argument("--data-dir", help="dataset folder (default: $BRAINTUMOR_DATA_DIR, data/raw, or download)")

    p = sub.add_parser("index", help="build or load the image index and print a summary")
    add_data_args(p)
    p.add_argument("--rebuild", action="store_true", help="ignore the cache")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("audit-duplicates", help="report duplicate groups and label conflicts")
    add_data_args(p)
    p.add_argument("--thresholds", type=int, nargs="+", default=[0, 2, 4],
                   help="pHash Hamming thresholds to compare (default: 0 2 4)")
    p.add_argument("--out", help="JSON report path (default: reports/audit/duplicates.json)")
    p.set_defaults(func=cmd_audit_duplicates)

    p = sub.add_parser("split", help="write the group-aware train/val/test manifest")
    add_data_args(p)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--fractions", type=float, nargs=3, default=list(Config().split_fractions),
                   metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--split-name", help="manifest name under data/splits/ (default: default)")
    p.add_argument("--out", help="manifest path (overrides --split-name)")
    p.add_argument("--check", action="store_true",
                   help="regenerate and compare with the committed manifest instead of writing")
    p.set_defaults(func=cmd_split)

    from .tasks import TASKS

    p = sub.add_parser("train", help="two-phase transfer learning for one task")
    add_data_args(p)
    p.add_argument("--task", required=True, choices=sorted(TASKS))
    p.add_argument("--backbone", default=Config.backbone,
                   help="registered backbone name or a path to a .keras backbone (default: %(default)s)")
    p.add_argument("--random-weights", action="store_true", help="random initialisation instead of ImageNet")
    p.add_argument("--quick", action="store_true", help="small stratified subset and few epochs (smoke run)")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (same as --epochs-finetune)")
    p.add_argument("--epochs-frozen", type=int, help="max head epochs on cached features (early-stopped)")
    p.add_argument("--epochs-finetune", type=int)
    p.add_argument("--image-size", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-frozen", type=float)
    p.add_argument("--lr-finetune", type=float)
    p.add_argument("--finetune-fraction", type=float, help="share of backbone layers unfrozen in phase 2")
    p.add_argument("--preprocess", help="image preprocessing before resizing (default: none)")
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--split-name", help="manifest name under data/splits/ (default: default)")
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="calibrate + threshold on validation, report on test")
    add_data_args(p)
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    p.add_argument("--rule", default="youden", choices=["youden", "sensitivity", "specificity"],
                   help="threshold rule, applied to validation (default: youden)")
    p.add_argument("--target", type=float, default=0.95, help="target for the sensitivity/specificity rule")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--split-name", help="manifest name under data/splits/ (default: default)")
    p.add_argument("--no-figures", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="run a trained model on your own images")
    p.add_argument("paths", nargs="+", help="image files, folders or globs")
    p.add_argument("--model", required=True, help="run folder models/<task>/<run-id>, or models/<task> for its newest run")
    p.add_argument("--out", help="results file (.csv or .json); default: CSV to stdout")
    p.add_argument("--gradcam", metavar="DIR", help="also write Grad-CAM overlays here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("audit-shortcuts",
                       help="shortcut and leakage probes, raw vs crop-mask (reports/audit/shortcuts.*)")
    add_data_args(p)
    p.add_argument("--tasks", nargs="+", default=["ct", "mri"], choices=["ct", "mri"])
    p.add_argument("--backbone", default=Config.backbone, help="frozen feature extractor (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=Config.image_size)
    p.add_argument("--seed", type=int, default=Config.seed)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default: 1000)")
    p.add_argument("--limit-per-class", type=int, help="at most this many images per split and class (quick run)")
    p.add_argument("--workers", type=int, help="processes for text detection (default: all cores)")
    p.add_argument("--split-name", help="manifest name under data/splits/ (default: default)")
    p.add_argument("--out", help="output folder (default: reports/audit)")
    p.add_argument("--no-examples", action="store_true", help="skip the mitigation example figure")
    p.set_defaults(func=cmd_audit_shortcuts)

    p = sub.add_parser("results", help="the results table from reports/*/metrics.json")
    p.add_argument("--update-readme", action="store_true", help="rewrite README.md's results block")
    p.set_defaults(func=cmd_results)
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
