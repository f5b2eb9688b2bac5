"""Run a trained model on your own images: files, folders or globs → one row per file.

Every row names the file, the predicted class, the calibrated probabilities, the
decision at the model card's threshold and the model's id. A file that cannot be read
(empty, truncated, not an image, too large) gets a row with its error instead of
stopping the batch.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import BrainTumorError, ImageReadError
from .data.images import is_image_file
from .metrics import apply_temperature
from .models.classifier import LOGITS_LAYER
from .models.modelcard import is_run, load_run
from .preprocess import load_prepared


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders recursively (image files only), globs expanded; sorted
    within each input and de-duplicated. A name matching nothing is kept, so it gets an
    error row ("file not found") rather than vanishing."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and is_image_file(f)))
        elif p.exists():
            out.append(p)
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=True)) if Path(m).is_file()]
            out.extend(matches or [p])
    return list(dict.fromkeys(out))


def resolve_run(path: str | Path) -> Path:
    """A run folder, or the newest run inside a task folder such as ``models/ct``."""
    p = Path(path)
    if p.is_dir() and not is_run(p):
        runs = sorted(d for d in p.iterdir() if is_run(d))
        if runs:
            return runs[-1]  # run ids start with a timestamp
    return p


def probabilities_from_logits(logits: np.ndarray, temperature: float, binary: bool) -> np.ndarray:
    """Calibrated class probabilities, shape ``(N, K)`` (binary: ``[P(healthy), P(tumor)]``),
    by :func:`braintumor.metrics.apply_temperature`, as evaluation calibrates them."""
    z = np.asarray(logits, dtype=np.float64)
    p = apply_temperature(z.reshape(-1) if binary else z, temperature, binary, kind="logits")
    return np.stack([1.0 - p, p], axis=1) if binary else p


@dataclass
class Predictor:
    """A loaded model plus its card; call :meth:`predict_paths` as often as you like."""

    model: object
    card: dict
    run_dir: Path

    @classmethod
    def load(cls, run_dir: str | Path) -> "Predictor":
        import keras

        model, card = load_run(run_dir)
        logits_model = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
        return cls(logits_model, card, Path(run_dir))

    @property
    def binary(self) -> bool:
        return len(self.card["classes"]) == 2

    @property
    def temperature(self) -> float:
        return float(self.card.get("temperature") or 1.0)

    @property
    def threshold(self) -> float:
        t = self.card.get("decision_threshold")
        return float(t) if t is not None else 0.5

    def predict_arrays(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities ``(N, K)`` for prepared ``uint8`` images."""
        logits = self.model.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size, verbose=0)
        return probabilities_from_logits(logits, self.temperature, self.binary)

    def predict_paths(self, paths: list[str | Path], batch_size: int = 32,
                      progress: bool = True) -> pd.DataFrame:
        classes = list(self.card["classes"])
        size, preprocess = int(self.card["image_size"]), self.card["preprocess"]
        model_id = f"{self.card['task']}/{self.card.get('run_id', self.run_dir.name)}"
        rows: list[dict] = []
        bar = tqdm(total=len(paths), desc="predicting", unit="img", disable=not progress)
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            images, ok_rows = [], []
            for p in chunk:
                row = {"path": str(p), "model": model_id, "error": ""}
                try:
                    images.append(load_prepared(p, size, preprocess))
                    ok_rows.append(row)
                except ImageReadError as e:
                    row["error"] = e.reason
                rows.append(row)
            if images:
                probs = self.predict_arrays(np.stack(images), batch_size)
                for row, pr in zip(ok_rows, probs):
                    for c, v in zip(classes, pr):
                        row[f"p_{c}"] = float(v)
                    if self.binary:
                        positive = pr[1] >= self.threshold
                        row["predicted"] = classes[int(positive)]
                        row["decision_threshold"] = self.threshold
                    else:
                        row["predicted"] = classes[int(pr.argmax())]
            bar.update(len(chunk))
        bar.close()
        cols = ["path", "predicted"] + [f"p_{c}" for c in classes]
        cols += ["decision_threshold"] if self.binary else []
        cols += ["model", "error"]
        return pd.DataFrame(rows).reindex(columns=cols)


def predict(inputs, model: str | Path, batch_size: int = 32, progress: bool = False) -> pd.DataFrame:
    """Predict for files, folders or globs with the model in run folder ``model``
    (or ``models/<task>`` for its newest run)."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise BrainTumorError(f"no image files found in {list(inputs)}")
    return Predictor.load(resolve_run(model)).predict_paths(paths, batch_size=batch_size, progress=progress)


def write_results(df: pd.DataFrame, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(df.to_json(orient="records", indent=2))
    else:
        df.to_csv(out, index=False)
    return out


def write_gradcams(predictor: Predictor, results: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """A Grad-CAM overlay PNG per successfully predicted file, for the predicted class."""
    from PIL import Image

    from .explain import gradcam, overlay

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size, preprocess = int(predictor.card["image_size"]), predictor.card["preprocess"]
    classes = list(predictor.card["classes"])
    written = []
    for i, row in results[results["error"] == ""].iterrows():
        image = load_prepared(row["path"], size, preprocess)
        cam = gradcam(predictor.model, image[None], class_index=classes.index(row["predicted"]))[0]
        target = out_dir / f"{i:05d}_{Path(row['path']).stem}_gradcam.png"
        Image.fromarray(overlay(image, cam)).save(target)
        written.append(target)
    return written
