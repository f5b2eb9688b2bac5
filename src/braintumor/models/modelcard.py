"""Self-describing model folders: ``model.keras`` + ``model_card.json``.

A run folder (``models/<task>/<run-id>/``) holds everything inference needs — classes in
output order, image size, preprocessing, decision threshold, temperature — so
:mod:`braintumor.inference` never imports training code or guesses a setting. The card
follows the spirit of a MONAI bundle's ``metadata.json``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ModelCardError
from ..files import write_text_atomic

CARD_NAME = "model_card.json"
MODEL_NAME = "model.keras"
HISTORY_NAME = "history.csv"  # per-epoch training history beside the card
CARD_SCHEMA = 1
INTENDED_USE = (
    "Research and teaching only: a benchmark of transfer learning on a public, confounded "
    "image collection. NOT a medical device and NOT for clinical use; it has not been "
    "validated on any patient population."
)


def write_card(run_dir: str | Path, card: dict) -> Path:
    return write_text_atomic(Path(run_dir) / CARD_NAME, json.dumps(card, indent=2, sort_keys=False) + "\n")


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


def is_run(folder: str | Path) -> bool:
    """Whether ``folder`` is a run folder (it holds a model card)."""
    return (Path(folder) / CARD_NAME).is_file()


def training_schedule(card: dict) -> str:
    """How a run was trained, in a few words: image size, epochs run, fine-tuning rate."""
    training = card.get("training", {})
    cfg, run = training.get("config", {}), training.get("epochs_run", {})
    kept = " (head kept)" if training.get("kept_phase") == "frozen" and run.get("finetune") else ""
    return (f"{card.get('image_size', cfg.get('image_size'))} px, head {run.get('frozen', '?')} + "
            f"fine-tune {run.get('finetune', '?')} ep, lr {cfg.get('lr_finetune', '?'):g}{kept}")


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
