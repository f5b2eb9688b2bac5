"""Command-line interface: argument parsing only; the work happens in the modules.

    braintumor index               build (or load) the image index and print a summary
    braintumor audit-duplicates    duplicate groups, label conflicts, threshold comparison
    braintumor split               write the group-aware split manifest
    braintumor train --task ct     fine-tune a backbone and save model + model card
    braintumor study run|status|report|compare   the matched multi-seed study (studies/main.toml)
    braintumor compare RUN_A RUN_B paired differences of two runs on the same test rows

Options that set a :class:`~braintumor.config.Config` field are generated from the field
(:func:`add_option`), so their names, types, defaults and help cannot drift from it.
Each command module holds its commands and their parsers: :mod:`.data`, :mod:`.models`,
:mod:`.audits`, :mod:`.reports`; this one puts them together and runs the command.
"""
from __future__ import annotations

import argparse
import sys

from ..errors import BrainTumorError
from . import audits, data, models, reports
from .options import add_option, config_from_args

__all__ = ["add_option", "build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="braintumor",
        description="Brain tumour detection in CT and MRI (research only, not for clinical use).")
    sub = parser.add_subparsers(dest="command", required=True)
    # In the order `braintumor --help` lists them.
    data.add_parsers(sub)
    models.add_parsers(sub)
    audits.add_parsers(sub)
    reports.add_compare_recipes_parser(sub)

    from .. import serve  # light: Streamlit and TensorFlow load only when the app starts

    serve.add_parser(sub)

    from ..studies import cli as studies_cli  # study run/status/report/compare, compare

    studies_cli.add_parsers(sub)
    reports.add_results_parser(sub)
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
