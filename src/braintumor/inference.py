"""Run a trained model on images: the loaded model, its card, its checks and its calibration.

:class:`Predictor` maps prepared images to calibrated probabilities and pooled features
(what evaluation, the checks and Grad-CAM use). On files, folders or globs
(:meth:`Predictor.predict_paths`, :func:`predict`) every row names the file (and, for
DICOM/NIfTI scans, the slice and its series), the predicted class, the calibrated
probabilities, the decision at the model card's threshold, the out-of-distribution and
modality checks (:mod:`braintumor.ood`: ``modality``, ``p_ct``, ``ood_score``,
``in_distribution``, ``warning``) and the model's id; a file that cannot be read gets a
row with its error instead of stopping the batch. That file-facing part is
:mod:`braintumor.predict_files`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import apply_temperature
from .models.classifier import LOGITS_LAYER, POOL_LAYER
from .models.modelcard import is_run, load_run

__all__ = ["Predictor", "expand_inputs", "predict", "resolve_run", "volume_table", "write_gradcams",
           "write_results"]

CHECK_COLUMNS = ["modality", "p_ct", "ood_score", "in_distribution", "warning"]


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
    """A loaded model plus its card and checks; call :meth:`predict_paths` as often as you like.

    ``model`` maps images to logits (what evaluation and Grad-CAM use); ``checks`` are the
    run's out-of-distribution and modality checks (:mod:`braintumor.ood`), or None with the
    reason in ``checks_note``.
    """

    model: object
    card: dict
    run_dir: Path
    checks: object = None
    checks_note: str = ""
    _dual: object = field(default=None, repr=False)
    _pool: object = field(default=None, repr=False)
    _pool_workers: int = field(default=0, repr=False)

    def close(self) -> None:
        """Stop the decoding processes (they also stop when the Predictor is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._pool_workers = None, 0

    @classmethod
    def load(cls, run_dir: str | Path) -> "Predictor":
        import keras

        from .ood import load_checks

        model, card = load_run(run_dir)
        logits_model = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
        checks, note = load_checks(run_dir, card)
        return cls(logits_model, card, Path(run_dir), checks, note)

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

    @property
    def model_id(self) -> str:
        return f"{self.card['task']}/{self.card.get('run_id', self.run_dir.name)}"

    def predict_arrays(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities ``(N, K)`` for prepared ``uint8`` images."""
        logits = self.model.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size, verbose=0)
        return probabilities_from_logits(logits, self.temperature, self.binary)

    def logits_and_features(self, images: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Logits and pooled features (what the checks read) in one pass over the network."""
        import keras

        if self._dual is None:
            self._dual = keras.Model(self.model.input, [self.model.output,
                                                        self.model.get_layer(POOL_LAYER).output])
        logits, pooled = self._dual.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size,
                                            verbose=0)
        return np.asarray(logits), np.asarray(pooled)

    def predict_paths(self, paths: list[str | Path], batch_size: int = 32, progress: bool = True,
                      workers: int | None = None) -> pd.DataFrame:
        """One row per image file or scan slice of ``paths`` (files, DICOM series folders,
        NIfTI volumes; see :func:`expand_inputs` for folders and globs). ``workers``: decoding
        processes (default: every core). ``df.attrs['notes']`` holds what the user should
        know once (checks missing); ``df.attrs['volumes']`` the per-series summary.
        Implemented in :mod:`braintumor.predict_files`."""
        from .predict_files import predict_paths

        return predict_paths(self, paths, batch_size, progress, workers)


# File-facing helpers live in braintumor.predict_files (outside the study's result
# fingerprint), which imports Predictor from here: re-exported lazily (PEP 562).
_FILE_HELPERS = {"predict", "volume_table", "volumes_path", "write_gradcams", "write_results"}


def __getattr__(name: str):
    if name in _FILE_HELPERS:
        from . import predict_files

        return getattr(predict_files, name)
    if name == "expand_inputs":
        from .inputs import expand_inputs

        return expand_inputs
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
