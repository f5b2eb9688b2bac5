"""braintumor: brain tumour detection in CT and MRI with Keras transfer learning.

Research code, not a medical device. The data layer (index, duplicate groups, splits)
imports without TensorFlow; modelling modules import it when used.
"""
from .config import Config, project_root
from .errors import BrainTumorError, DatasetError, ImageReadError, WeightsUnavailableError

__version__ = "0.1.0"
__all__ = ["Config", "project_root", "predict", "modality_of", "BrainTumorError", "DatasetError", "ImageReadError",
           "WeightsUnavailableError", "__version__"]


def predict(inputs, model, batch_size: int = 32, progress: bool = False, workers: int | None = None):
    """Run the trained model in run folder ``model`` (or ``models/<task>`` for its newest
    run) on image files, DICOM files and series folders, NIfTI volumes, folders or globs;
    one row per image or slice, with the out-of-distribution and modality columns, and the
    per-series summary in ``.attrs['volumes']`` (see :func:`braintumor.inference.predict`).
    Imports TensorFlow on first use."""
    from .inference import predict as run_predict

    return run_predict(inputs, model, batch_size=batch_size, progress=progress, workers=workers)


def modality_of(run, images):
    """CT / MRI / other for files or prepared arrays, from the run's fitted checks (see
    :func:`braintumor.ood.modality_of`)."""
    from .ood import modality_of as run_modality_of

    return run_modality_of(run, images)
