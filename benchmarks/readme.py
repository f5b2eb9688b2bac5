"""Write README's "Performance" block from ``reports/benchmarks/*.json``.

Every table in the block is generated from a committed benchmark report, so the README
never carries a number typed by hand. Run: ``python -m benchmarks.readme`` (``make bench``
does it after the benchmarks).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from braintumor.reporting.readme import markdown_table, replace_block

from benchmarks import common

ORDER = ("input_pipeline", "index_build", "training", "inference", "ood", "end_to_end_quick",
         "end_to_end_full", "end_to_end")


def performance_section(reports: Path) -> str:
    """Markdown for every full (non-smoke) benchmark report under ``reports``."""
    found = {p.stem: json.loads(p.read_text()) for p in sorted(reports.glob("*.json"))}
    found = {k: v for k, v in found.items() if not v.get("smoke")}
    if not found:
        return "_No benchmark reports yet: run `make bench`._"
    parts = []
    for name in sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n)):
        r = found[name]
        invocation = r.get("invocation") or f"python -m benchmarks.{name}"
        code = f", code {r['code']}" if r.get("code") else ""
        parts.append(f"**{r['title']}** (`{invocation}`, {r['created'][:10]}{code}; "
                     f"{common.describe(r['machine']).splitlines()[0]})\n")
        if r.get("other_processes_running"):
            parts.append("_Other processes were competing for the CPU during this run._\n")
        parts.append(markdown_table(r["table"]["headers"], r["table"]["rows"]))
        extras = [f"{k}: **{v:.2f}×**" for k, v in r.get("ratios", {}).items()]
        extras += r.get("notes", [])
        if extras:
            parts.append("\n" + "\n".join(f"- {e}" for e in extras))
        parts.append("")
    return "\n".join(parts).rstrip()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reports", type=Path, default=common.REPORTS)
    p.add_argument("--readme", type=Path, default=common.REPO / "README.md")
    args = p.parse_args(argv)
    text = args.readme.read_text()
    new = replace_block(text, "benchmarks", performance_section(args.reports), str(args.readme))
    args.readme.write_text(new)
    print(f"{args.readme}: Performance block {'updated' if new != text else 'already up to date'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
