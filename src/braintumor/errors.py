"""The project's exception types.

Every error a user can cause (a bad file, a missing dataset, missing weights) is a
:class:`BrainTumorError` whose message names the thing at fault and the fix, so the CLI
can print one line instead of a traceback.
"""
from __future__ import annotations

from pathlib import Path


class BrainTumorError(Exception):
    """Base class for errors the user can act on."""


class ImageReadError(BrainTumorError):
    """An image file could not be decoded. Carries the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(BrainTumorError):
    """The dataset could not be found, downloaded, or has the wrong layout."""


class WeightsUnavailableError(BrainTumorError):
    """Pretrained weights are neither cached nor downloadable."""


class ModelCardError(BrainTumorError):
    """A saved model folder is missing, incomplete, or incompatible."""
