"""Self-describing model folders: ``model.keras`` + ``model_card.json``.

A run folder (``models/<task>/<run-id>/``) holds everything inference needs — classes in
output order, image size, preprocessing, decision threshold, temperature — so
:mod:`braintumor.inference` never imports training code or guesses a setting. The card
follows the spirit of a MONAI bundle's ``metadata.json``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from .errors import ModelCardError

CARD_NAME = "model_card.json"
MODEL_NAME = "model.keras"
CARD_SCHEMA = 1
INTENDED_USE = (
    "Research and teaching only: a benchmark of transfer learning on a public, confounded "
    "image collection. NOT a medical device and NOT for clinical use; it has not been "
    "validated on any patient population."
)


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("braintumor", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "pillow"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """One line for reports: CPU, usable cores, RAM, GPUs. Absolute timings depend on it."""
    import tensorflow as tf

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        ram = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        ram = "RAM unknown"
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return f"{cpu_model()}, {cores} cores, {ram}, GPU: {', '.join(gpus) if gpus else 'none'}"


def git_commit(root: str | Path) -> str | None:
    """The checkout's commit, suffixed ``-dirty`` when tracked files differ from it."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_card(run_dir: str | Path, card: dict) -> Path:
    path = Path(run_dir) / CARD_NAME
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return path


def read_card(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    path = run_dir / CARD_NAME
    if not run_dir.is_dir():
        raise ModelCardError(f"{run_dir}: no such model folder (expected models/<task>/<run-id>/)")
    if not path.is_file():
        raise ModelCardError(f"{path}: missing; a model folder needs {MODEL_NAME} and {CARD_NAME}")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ModelCardError(f"{path}: not valid JSON ({e})") from None
    missing = {"task", "classes", "image_size", "preprocess"} - set(card)
    if missing:
        raise ModelCardError(f"{path}: incompatible model card, missing {sorted(missing)}")
    if card.get("schema", 0) > CARD_SCHEMA:
        raise ModelCardError(f"{path}: written by a newer braintumor (schema {card['schema']}); upgrade")
    return card


def update_card(run_dir: str | Path, **fields) -> dict:
    card = read_card(run_dir)
    card.update(fields)
    write_card(run_dir, card)
    return card


def load_run(run_dir: str | Path):
    """``(keras model, card)`` from a run folder, loaded with ``safe_mode=True``."""
    import keras

    from . import backbones  # noqa: F401 - registers the custom layers saved models use

    card = read_card(run_dir)
    path = Path(run_dir) / MODEL_NAME
    if not path.is_file():
        raise ModelCardError(f"{path}: missing (trained weights are not in git; train or download the model)")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for a bad file
        raise ModelCardError(f"{path}: cannot be loaded ({type(e).__name__}: {e})") from None
    return model, card
