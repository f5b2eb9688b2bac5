"""One-off migration: give the committed reports written before intervals were held at the
edges (issue 13) the intervals today's code writes, from the counts they already store.

Zero-width intervals ([1.000, 1.000], [0.5, 0.5]) came from percentile bootstraps of a
metric every resample agrees on. Today's code replaces them (braintumor.metrics.edges for
model and external reports, audit.probes.heldout_report for probes); the older files kept
them. Nothing is refitted or re-predicted: each replacement is computed from the confusion
counts the file holds, with the same functions, and marked in the entry's ``interval`` key.

    python scripts/hold_edges_in_reports.py [--check]   # --check: list what is left, change nothing
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from braintumor.config import project_root
from braintumor.metrics.edges import _wilson, binary_edges, hold_edges, is_degenerate

ALPHA = 0.05


def _entries(node: dict) -> dict:
    return {k: v for k, v in node.items() if isinstance(v, dict) and {"value", "low", "high"} <= set(v)}


def _has_degenerate(entries: dict) -> bool:
    return any(is_degenerate(e) for e in entries.values() if "interval" not in e)


def _probe_counts(node: dict) -> dict | None:
    """Confusion counts of a probe report from its accuracy and balanced accuracy (two linear
    equations in tp and tn once the class sizes are known; either class may be the larger,
    and both readings give the same Wilson intervals for these two metrics)."""
    n = node["n_test"]
    big = round(node["chance_accuracy"] * n)
    acc, bal = node["accuracy"]["value"], node["balanced_accuracy"]["value"]
    for pos, neg in ((big, n - big), (n - big, big)):
        # tp + tn = acc * n ; tp / pos + tn / neg = 2 * bal
        det = 1 / neg - 1 / pos
        if det == 0:
            continue
        tn = (2 * bal - acc * n / pos) / det
        tp = acc * n - tn
        if -1e-6 <= tp <= pos + 1e-6 and -1e-6 <= tn <= neg + 1e-6:
            tp, tn = round(tp), round(tn)
            return {"tn": tn, "fp": neg - tn, "fn": pos - tp, "tp": tp}
    return None


def migrate(node, changes: list, where: str = "") -> None:
    if isinstance(node, list):
        for i, v in enumerate(node):
            migrate(v, changes, f"{where}[{i}]")
        return
    if not isinstance(node, dict):
        return
    cm, metrics = node.get("confusion_matrix"), node.get("metrics")
    if isinstance(cm, dict) and {"tn", "fp", "fn", "tp"} <= set(cm) and isinstance(metrics, dict) \
            and _has_degenerate(metrics):
        auc = (metrics.get("roc_auc") or {}).get("value")
        node["metrics"] = hold_edges(metrics, binary_edges(cm, auc, ALPHA))
        changes.append(f"{where}/metrics")
    for rate, n_key in (("specificity", "n_healthy"), ("sensitivity", "n_tumor")):
        entry = node.get(rate)
        if isinstance(entry, dict) and n_key in node and "interval" not in entry and is_degenerate(entry):
            n = node[n_key]
            node[rate] = hold_edges({rate: entry}, {rate: _wilson(round(entry["value"] * n), n, ALPHA)})[rate]
            changes.append(f"{where}/{rate}")
    if "val_log_loss" in node and "chance_accuracy" in node and _has_degenerate(_entries(node)):
        counts = _probe_counts(node)
        if counts is not None:
            held = hold_edges(_entries(node), binary_edges(counts, node["roc_auc"]["value"], ALPHA))
            node.update({k: held[k] for k in ("accuracy", "balanced_accuracy", "roc_auc")})
            changes.append(f"{where} (probe)")
    for k, v in node.items():
        if k == "metrics" and isinstance(cm, dict):
            continue  # a report's headline metrics: handled above
        migrate(v, changes, f"{where}/{k}")


def sync_records(root: Path, changes: list) -> None:
    """Study records copy their external reports' headline metrics: copy the held ones."""
    for path in sorted((root / "reports" / "studies").glob("*/*/seed-*.json")):
        record = json.loads(path.read_text())
        touched = False
        for name, ext in (record.get("external") or {}).items():
            report = root / ext.get("report_dir", "") / "metrics.json"
            if not report.is_file() or "metrics" not in ext:
                continue
            held = json.loads(report.read_text())["test"]["metrics"]
            for k, entry in ext["metrics"].items():
                if isinstance(entry, dict) and k in held and held[k].get("interval") and "interval" not in entry:
                    ext["metrics"][k] = {**entry, **{f: held[k][f] for f in ("low", "high", "interval")}}
                    touched = True
        if touched:
            path.write_text(json.dumps(record, indent=2) + "\n")
            changes.append(str(path.relative_to(root)))


def degenerate_left(root: Path) -> list[str]:
    left = []

    def walk(node, where):
        if isinstance(node, dict):
            if {"low", "high"} <= set(node) and is_degenerate(node) and "interval" not in node:
                left.append(where)
            for k, v in node.items():
                walk(v, f"{where}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    for path in sorted((root / "reports").rglob("*.json")):
        walk(json.loads(path.read_text()), str(path.relative_to(root)))
    return left


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only list zero-width intervals left")
    args = parser.parse_args(argv)
    root = project_root()
    if not args.check:
        for path in sorted((root / "reports").rglob("*.json")):
            if "studies" in path.parts and path.name.startswith("seed-"):
                continue  # records: synced from their reports below
            data, changes = json.loads(path.read_text()), []
            migrate(data, changes)
            if changes:
                path.write_text(json.dumps(data, indent=2) + "\n")
                print(f"{path.relative_to(root)}: {len(changes)} node(s) held ({', '.join(changes[:4])})")
        records: list = []
        sync_records(root, records)
        for r in records:
            print(f"{r}: external metrics synced from its reports")
    left = degenerate_left(root)
    for where in left:
        print(f"zero-width interval left: {where}")
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
