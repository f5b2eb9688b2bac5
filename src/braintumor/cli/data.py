"""``braintumor index``, ``audit-duplicates`` and ``split``: the dataset commands."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .options import add_option, config_from_args, print_table, subcommand


def cmd_index(args) -> int:
    from ..data.index import load_index, summarize

    t0 = time.perf_counter()
    df = load_index(config_from_args(args), rebuild=args.rebuild)
    elapsed = time.perf_counter() - t0
    print_table(summarize(df), f"Index of {df.attrs['root']} (fingerprint {df.attrs['fingerprint']})")
    bad = df[df["status"] != "ok"]
    print(f"\n{len(df):,} images, {len(bad)} unreadable, {elapsed:.1f} s")
    for _, row in bad.iterrows():
        print(f"  unreadable: {row['path']}: {row['status']}")
    return 0


def cmd_audit_duplicates(args) -> int:
    from ..data.duplicates import duplicate_report, threshold_comparison
    from ..data.index import load_index

    cfg = config_from_args(args)
    df = load_index(cfg)
    report = duplicate_report(df)
    print(f"{report['n_images']:,} images in {report['n_groups']:,} duplicate groups "
          f"(identical SHA-256 or pHash distance <= {cfg.phash_threshold})")
    print(f"{report['images_in_groups_size_gt1']:,} images share a group with another image, "
          f"in {report['n_groups_size_gt1']:,} groups; the largest holds {report['largest_group']}")
    import pandas as pd

    by_class = pd.DataFrame([{"class": k, **v} for k, v in report["by_class"].items()])
    print_table(by_class, "Images in duplicate groups, per class:")
    for key, title in (("label_conflict_groups", "Label conflicts (excluded from splits)"),
                       ("cross_modality_groups", "Groups spanning CT and MRI")):
        print(f"\n{title}: {len(report[key])}")
        for g in report[key]:
            print(f"  {g['group']}: " + " | ".join(g["paths"]))
    comparison = threshold_comparison(df, args.thresholds)
    print_table(comparison, "Effect of a looser pHash threshold:")
    report["threshold_comparison"] = comparison.to_dict(orient="records")
    out = Path(args.out) if args.out else cfg.reports_path / "audit" / "duplicates.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


def cmd_split(args) -> int:
    from ..data.index import load_index
    from ..data.splits import (check_fractions, check_no_group_leak, group_aware_split,
                               label_conflict_groups, split_summary, write_manifest)

    cfg = config_from_args(args)
    check_fractions(cfg.split_fractions)  # before the (slow) index, so the error is the only output
    df = load_index(cfg)
    manifest = group_aware_split(df, cfg.split_fractions, seed=cfg.seed)
    check_no_group_leak(manifest)
    if args.check:
        return _check_split(manifest, cfg)
    path = write_manifest(manifest, Path(args.out) if args.out else cfg.manifest_path)
    print_table(split_summary(manifest), f"Split (seed {cfg.seed}, fractions {cfg.split_fractions}):")
    excluded = df[~df["path"].isin(manifest["path"])]
    print(f"\n{len(manifest):,} of {len(df):,} images assigned; {len(excluded)} excluded "
          f"({len(label_conflict_groups(df))} label-conflict groups, "
          f"{int((df['status'] != 'ok').sum())} unreadable):")
    for _, row in excluded.iterrows():
        print(f"  excluded: {row['path']} ({row['label']}, group {row['group']})")
    print(f"wrote {path}")
    return 0


def _check_split(manifest, cfg) -> int:
    """``split --check``: 0 when the regenerated split equals the committed manifest."""
    from ..data.splits import MANIFEST_COLUMNS, read_manifest

    committed = read_manifest(cfg.manifest_path)
    fresh = manifest[MANIFEST_COLUMNS].sort_values("path").reset_index(drop=True).astype(str)
    if not fresh.equals(committed[MANIFEST_COLUMNS].reset_index(drop=True)):
        print(f"error: the split regenerated from the data differs from {cfg.manifest_path}",
              file=sys.stderr)
        return 1
    print(f"{cfg.manifest_path} matches the split regenerated from the data "
          f"({len(manifest):,} images, seed {cfg.seed})")
    return 0


def add_parsers(sub) -> None:
    p = subcommand(sub, "index", "build or load the image index and print a summary", cmd_index)
    p.add_argument("--rebuild", action="store_true", help="ignore the cache")

    p = subcommand(sub, "audit-duplicates", "report duplicate groups and label conflicts", cmd_audit_duplicates)
    p.add_argument("--thresholds", type=int, nargs="+", default=[0, 2, 4],
                   help="pHash Hamming thresholds to compare (default: 0 2 4)")
    p.add_argument("--out", help="JSON report path (default: reports/audit/duplicates.json)")

    p = subcommand(sub, "split", "write the group-aware train/val/test manifest", cmd_split)
    add_option(p, "seed")
    add_option(p, "split_fractions", nargs=3, metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--out", help="manifest path (overrides --split-name)")
    p.add_argument("--check", action="store_true",
                   help="regenerate and compare with the committed manifest instead of writing")
