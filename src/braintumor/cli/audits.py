"""``braintumor audit-shortcuts`` and ``audit-sources``: the shortcut and source audits."""
from __future__ import annotations

from pathlib import Path

from .options import add_option, config_from_args, print_table, subcommand


def cmd_audit_shortcuts(args) -> int:
    from ..audit.figures import mitigation_examples, plot_mitigation_examples, plot_probes
    from ..audit.probes import probe_table, run_audit, write_report
    from ..reporting import plots
    from ..study import load_split

    cfg = config_from_args(args)
    report = run_audit(cfg)
    out = Path(args.out) if args.out else cfg.reports_path / "audit"
    print_table(probe_table(report), "Test accuracy / AUC [95% CI], raw vs crop-mask:")
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
    from ..audit.probes import write_report
    from ..audit.sources import run_source_audit, source_tables

    cfg = config_from_args(args)
    report = run_source_audit(cfg, args.sources)
    out = Path(args.out) if args.out else cfg.reports_path / "audit" / "sources.json"
    print(source_tables(report))
    print(f"wrote {write_report(report, out)}")
    return 0


def add_parsers(sub) -> None:
    p = subcommand(sub, "audit-shortcuts", "shortcut and leakage probes, raw vs crop-mask "
                   "(reports/audit/shortcuts.*)", cmd_audit_shortcuts)
    add_option(p, "audit.tasks", choices=["ct", "mri"])
    add_option(p, "backbone", help="frozen feature extractor")
    for name in ("image_size", "seed", "audit.n_resamples", "audit.n_permutations", "audit.limit_per_class",
                 "audit.workers"):
        add_option(p, name)
    p.add_argument("--out", help="output folder (default: reports/audit)")
    p.add_argument("--no-examples", action="store_true", help="skip the mitigation example figure")

    p = subcommand(sub, "audit-sources", "class mix, within-source and leave-one-source-out probes "
                   "(reports/audit/sources.json)", cmd_audit_sources)
    p.add_argument("--sources", help="CSV of path,source (default: mri_sources.csv beside the dataset folder)")
    add_option(p, "audit.tasks", choices=["ct", "mri"])
    for name in ("seed", "audit.n_resamples", "audit.limit_per_class"):
        add_option(p, name)
    p.add_argument("--out", help="report path (default: reports/audit/sources.json)")
