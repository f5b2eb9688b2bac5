"""Reading an external test set: a folder of class sub-folders, or a CSV of paths and labels.

Both become one table (:class:`ExternalSet`) with the file's ``path`` as given (relative
to the folder or the CSV's folder), its absolute ``file``, the ``label`` as one of the
model's classes, the integer ``y``, a ``group`` (the patient, else one per image) and any
stratum columns. Every mistake a user can make (a missing folder or column, a class name
the model does not know, a path that does not exist) is one :class:`BrainTumorError`
naming the file and the fix.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from ..data.images import is_image_file
from ..errors import BrainTumorError

DROP = "-"  # a label map target that leaves the label's images out (e.g. ``none=-`` for a sub-type model)
_SPELLINGS = {"tumour": "tumor"}  # British spelling of a class name


@dataclass
class ExternalSet:
    """An external test set's rows and where they came from."""

    source: Path  # the folder or CSV
    rows: pd.DataFrame  # path, file, label, y, group, <strata>
    classes: tuple[str, ...]
    group_col: str | None = None
    strata: list[str] = field(default_factory=list)
    label_map: dict[str, str] = field(default_factory=dict)
    n_dropped: dict[str, int] = field(default_factory=dict)  # labels mapped to DROP -> count


def parse_label_map(items: Sequence[str] | str | None) -> dict[str, str]:
    """``["healthy=no_tumor", "a=b,c=d"]`` → ``{"no_tumor": "healthy", ...}``.

    Each item reads CLASS=NAME (the model's class, then the name in the data) or NAME=CLASS;
    which side is the class is decided later, against the model's classes.
    """
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    pairs: dict[str, str] = {}
    for item in items:
        for part in str(item).split(","):
            if not part.strip():
                continue
            left, sep, right = part.partition("=")
            if not sep or not left.strip() or not right.strip():
                raise BrainTumorError(f"--label-map {part!r}: expected CLASS=NAME, e.g. healthy=no_tumor")
            pairs[left.strip()] = right.strip()
    return pairs


def resolve_label_map(pairs: Mapping[str, str], classes: Sequence[str]) -> dict[str, str]:
    """Data name → model class (or :data:`DROP`), whichever way round each pair was written."""
    out: dict[str, str] = {}
    for left, right in pairs.items():
        if left in classes or left == DROP:
            out[right.lower()] = left
        elif right in classes or right == DROP:
            out[left.lower()] = right
        else:
            raise BrainTumorError(f"--label-map {left}={right}: neither side is one of the model's classes "
                                  f"{list(classes)} (or {DROP!r} to leave those images out)")
    return out


def _class_of(name: str, classes: Sequence[str], label_map: Mapping[str, str]) -> str | None:
    key = str(name).strip().lower()
    if key in label_map:
        return label_map[key]
    key = _SPELLINGS.get(key, key)
    return next((c for c in classes if c.lower() == key), None)


def _map_labels(raw: pd.Series, classes, label_map, where: str) -> pd.Series:
    mapped = raw.map(lambda v: _class_of(v, classes, label_map))
    unknown = sorted(set(raw[mapped.isna()].astype(str)))
    if unknown:
        example = unknown[0]
        raise BrainTumorError(
            f"{where}: label(s) {unknown[:6]} are not among the model's classes {list(classes)}; "
            f"map them with --label-map, e.g. --label-map {classes[0]}={example} (or {example}={DROP} "
            "to leave them out)")
    return mapped


def _from_folder(folder: Path, classes, label_map) -> pd.DataFrame:
    subs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not subs:
        raise BrainTumorError(f"{folder}: no class sub-folders; --data takes a folder with one sub-folder "
                              f"per class ({', '.join(classes)}) or a CSV with path and label columns")
    rows = []
    for sub in subs:
        files = sorted(f for f in sub.rglob("*") if f.is_file() and is_image_file(f))
        rows += [{"path": f.relative_to(folder).as_posix(), "raw_label": sub.name} for f in files]
    if not rows:
        raise BrainTumorError(f"{folder}: the class sub-folders hold no image files")
    df = pd.DataFrame(rows)
    df["label"] = _map_labels(df["raw_label"], classes, label_map, f"{folder} (sub-folder names)")
    return df


def _read_csv(path: Path, label_col: str, group_col: str | None, strata: Sequence[str]) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise BrainTumorError(f"{path}: not a readable CSV ({e})") from None
    needed = [("path", "the image paths, relative to the CSV's folder"), (label_col, "--label-col")]
    needed += [(group_col, "--group-col")] if group_col else []
    needed += [(s, "--strata") for s in strata]
    for col, what in needed:
        if col not in df.columns:
            raise BrainTumorError(f"{path}: no column {col!r} (columns: {', '.join(map(str, df.columns))}); "
                                  f"fix {what}")
    empty = df["path"].isna() | df[label_col].isna()
    if empty.any():
        lines = list((df.index[empty] + 2)[:5])  # file line numbers (1 = header)
        raise BrainTumorError(f"{path}: empty path or {label_col} on line(s) {lines}; fill or remove them")
    df["raw_label"] = df[label_col].astype(str)
    return df


def _check_files(df: pd.DataFrame, base: Path, source: Path) -> None:
    missing = [p for p, f in zip(df["path"], df["file"]) if not Path(f).is_file()]
    if missing:
        raise BrainTumorError(f"{source}: {len(missing)} path(s) do not exist relative to {base}, e.g. "
                              f"{missing[0]!r}; paths in the CSV are read relative to the CSV's folder")


def load_external(data: str | Path, classes: Sequence[str], label_map: Mapping[str, str] | None = None,
                  group_col: str | None = None, strata: Sequence[str] = (),
                  label_col: str = "label") -> ExternalSet:
    """The rows of an external test set, labels mapped to ``classes`` (the model's)."""
    source = Path(data).expanduser()
    classes = tuple(classes)
    lmap = resolve_label_map(label_map or {}, classes)
    if source.is_dir():
        if group_col or strata:
            raise BrainTumorError(f"{source}: --group-col and --strata need a CSV with those columns; "
                                  "a folder gives only labels")
        df, base = _from_folder(source, classes, lmap), source
    elif source.is_file():
        if source.suffix.lower() != ".csv":
            raise BrainTumorError(f"{source}: --data takes a folder of class sub-folders or a .csv file")
        df, base = _read_csv(source, label_col, group_col, strata), source.parent
        df["label"] = _map_labels(df["raw_label"], classes, lmap, f"{source} (column {label_col!r})")
    else:
        raise BrainTumorError(f"{source}: no such file or folder; --data takes a folder with one sub-folder "
                              "per class or a CSV with path and label columns")
    dropped = df["label"] == DROP
    n_dropped = {str(k): int(v) for k, v in df.loc[dropped, "raw_label"].value_counts().items()}
    df = df[~dropped].reset_index(drop=True)
    if df.empty:
        raise BrainTumorError(f"{source}: no images left after the label map")
    df["file"] = [str(base / p) for p in df["path"]]
    _check_files(df, base, source)
    df["y"] = df["label"].map({c: i for i, c in enumerate(classes)}).astype(int)
    df["group"] = df[group_col].astype(str) if group_col else [f"image{i}" for i in range(len(df))]
    keep = ["path", "file", "label", "raw_label", "y", "group"]
    keep += [s for s in strata if s not in keep]
    return ExternalSet(source, df[keep], classes, group_col, list(strata), lmap, n_dropped)
