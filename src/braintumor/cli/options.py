"""Options generated from :class:`~braintumor.config.Config` fields and read back into a
Config, plus what every command module shares (the subcommand skeleton, table printing)."""
from __future__ import annotations

import argparse
import dataclasses

from ..config import Config


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


def subcommand(sub, name: str, help: str, func, data: bool = True) -> argparse.ArgumentParser:
    """A subcommand; ``data`` ones take ``--data-dir`` and ``--split-name``."""
    p = sub.add_parser(name, help=help)
    if data:
        add_option(p, "data_dir")
        add_option(p, "split_name")
    p.set_defaults(func=func)
    return p


def print_table(df, title: str | None = None) -> None:
    if title:
        print(f"\n{title}")
    print(df.to_string(index=False))
