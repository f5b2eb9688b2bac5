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
    from .splits import check_no_group_leak, group_aware_split, label_conflict_groups, split_summary, write_manifest

    cfg = _config(args, seed=args.seed, split_fractions=tuple(args.fractions))
    df = load_index(cfg)
    manifest = group_aware_split(df, cfg.split_fractions, seed=cfg.seed)
    check_no_group_leak(manifest)
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
    p.set_defaults(func=cmd_split)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrainTumorError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
