"""``braintumor train``, ``evaluate``, ``fit-ood``, ``evaluate-external`` and ``predict``:
the commands that train a run or use one."""
from __future__ import annotations

import argparse
import sys

from .options import add_option, config_from_args, subcommand

MODEL_HELP = "run folder models/<task>/<run-id>, or models/<task> for its newest trained run"


def cmd_train(args) -> int:
    from ..training import train

    cfg = config_from_args(args)
    if args.epochs is not None:
        cfg = cfg.replace(epochs_finetune=args.epochs)
    if cfg.quick and args.epochs is None:
        cfg = cfg.replace(epochs_frozen=min(cfg.epochs_frozen, 20), epochs_finetune=min(cfg.epochs_finetune, 1))
    run_dir = train(cfg, verbose=args.verbose)
    note_task_defaults(run_dir, cfg)
    print(f"model folder: {run_dir}")
    return 0


def note_task_defaults(run_dir, cfg) -> None:
    """Say in the model card whether the run used its task's default training, and why that
    is the default (the matched study's best arm)."""
    from ..config import defaults_note
    from ..models.modelcard import read_card, write_card

    card = read_card(run_dir)
    write_card(run_dir, {**card, "task_defaults": defaults_note(cfg)})


def cmd_evaluate(args) -> int:
    from ..evaluate import evaluate_run, report_dir
    from ..metrics import format_ci
    from ..predict_files import find_model

    cfg = config_from_args(args)
    run = find_model(args.model)
    report = evaluate_run(run, cfg, figures=not args.no_figures)
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
    print(f"wrote {report_dir(cfg, report)}/metrics.json")  # task, preprocess and recipe name the folder
    if not args.no_ood:
        from ..ood import fit_ood

        _print_ood(run, fit_ood(run, cfg, progress=False))
    return 0


def cmd_evaluate_external(args) -> int:
    from ..external import Options, evaluate_external, parse_label_map, report_dir
    from ..metrics import format_ci
    from ..predict_files import find_model

    cfg = config_from_args(args)
    run = find_model(args.model)
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
    from ..inference import Predictor, expand_inputs, volumes_path, write_results
    from ..predict_files import find_model

    paths = expand_inputs(args.paths)
    if not paths:
        print(f"error: no image or scan files found in {args.paths}", file=sys.stderr)
        return 2
    predictor = Predictor.load(find_model(args.model))
    df = predictor.predict_paths(paths, batch_size=args.batch_size, progress=not args.no_progress,
                                 workers=args.workers)
    if args.gradcam:
        from ..inference import write_gradcams

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
    from ..predict_files import find_model
    from ..ood import fit_ood

    run = find_model(args.model)
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


def add_parsers(sub) -> None:
    _train_options(subcommand(sub, "train", "two-phase transfer learning for one task", cmd_train))

    p = subcommand(sub, "evaluate", "calibrate + threshold on validation, report on test", cmd_evaluate)
    p.add_argument("--model", required=True, help=MODEL_HELP)
    for name in ("rule", "target", "n_resamples", "cluster"):
        add_option(p, "evaluation." + name)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-ood", action="store_true",
                   help="skip fitting the out-of-distribution/modality checks (braintumor fit-ood)")

    p = subcommand(sub, "fit-ood", "fit the out-of-distribution and CT/MRI checks predict applies "
                   "(writes <run>/ood.npz and the card's ood entry)", cmd_fit_ood)
    p.add_argument("--model", required=True, help=MODEL_HELP)
    add_option(p, "batch_size")
    p.add_argument("--no-progress", action="store_true")

    _external_options(subcommand(sub, "evaluate-external", "a trained run on an external test set "
                                 "(evaluation only; reports/external/<name>/<run>/)", cmd_evaluate_external))

    p = subcommand(sub, "predict", "run a trained model on your own images", cmd_predict, data=False)
    p.add_argument("paths", nargs="+", help="image files, DICOM files or series folders, NIfTI volumes, folders or globs")
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--out", help="results file (.csv or .json); default: CSV to stdout")
    p.add_argument("--gradcam", metavar="DIR", help="also write Grad-CAM overlays here")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None,
                   help="processes decoding and preprocessing files (default: every core)")
    p.add_argument("--no-progress", action="store_true")


def _train_options(p: argparse.ArgumentParser) -> None:
    from ..config import task_defaults
    from ..data.tasks import TASKS
    from ..recipes import available, describe

    add_option(p, "task", required=True, choices=sorted(TASKS))
    add_option(p, "backbone")
    add_option(p, "weights", flag="--random-weights", action="store_const", const=None,
               help="random initialisation instead of ImageNet")
    add_option(p, "quick")
    p.add_argument("--epochs", type=int, help="fine-tuning epochs (same as --epochs-finetune)")
    for name in ("epochs_frozen", "image_size", "batch_size", "lr_frozen", "lr_finetune",
                 "finetune_fraction", "lesion_copies", "augment", "seed"):
        add_option(p, name)

    def per_task(name: str) -> str:  # Config.TASK_DEFAULTS: the study's best arm per task
        return " (default: the task's; " + ", ".join(f"{t} {task_defaults(t)[name]}" for t in sorted(TASKS)) + ")"

    add_option(p, "epochs_finetune", help="fine-tuning epochs" + per_task("epochs_finetune"))
    add_option(p, "preprocess", help="image preprocessing: none; crop-mask (text removed, outside the head "
               "blanked, cropped to it); crop-mask-zscore (and grey levels standardised inside the head)"
               + per_task("preprocess"))
    add_option(p, "recipe", help="training recipe, or several joined by '+': none; "
               + "; ".join(describe(r) for r in available()[1:]) + per_task("recipe"))
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2], help="Keras verbosity")


def _external_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help=MODEL_HELP)
    p.add_argument("--data", required=True, help="folder with one sub-folder per class, or a CSV with path "
                   "(relative to the CSV) and label columns")
    p.add_argument("--name", required=True, help="name of the set (report folder reports/external/<name>/)")
    p.add_argument("--label-map", nargs="+", metavar="CLASS=NAME",
                   help="data label names for the model's classes, e.g. healthy=no_tumor,tumor=yes; "
                        "NAME=- leaves NAME out (e.g. none=- for a sub-type model)")
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
