"""Rewrite the ``task_defaults`` note of every committed model card under ``models/`` from
today's ``Config.TASK_DEFAULTS`` (run after changing them: a card written earlier would still
say its run is the task's default). Only that note changes; ``--check`` lists stale cards and
exits 1 instead."""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from braintumor.cli.models import note_task_defaults  # noqa: E402
from braintumor.config import Config, defaults_note  # noqa: E402
from braintumor.models.modelcard import CARD_NAME, read_card  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="list cards whose note is stale; change nothing")
    args = p.parse_args(argv)
    stale = []
    for path in sorted((ROOT / "models").glob(f"*/*/{CARD_NAME}")):
        card = read_card(path.parent)
        if "task_defaults" not in card or "config" not in card.get("training", {}):
            continue  # a card the note was never written to (trained before task defaults existed)
        config = Config.from_dict(card["training"]["config"])
        if card["task_defaults"] != defaults_note(config):
            stale.append(path.parent.relative_to(ROOT))
            if not args.check:
                note_task_defaults(path.parent, config)  # what train and the study runner write
    print(f"{len(stale)} card(s) {'stale' if args.check else 'rewritten'}" + "".join(f"\n  {s}" for s in stale))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
