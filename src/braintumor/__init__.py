"""braintumor: brain tumour detection in CT and MRI with Keras transfer learning.

Research code, not a medical device. The data layer (index, duplicate groups, splits)
imports without TensorFlow; modelling modules import it when used.
"""
from .config import Config, project_root
from .errors import BrainTumorError, DatasetError, ImageReadError, WeightsUnavailableError

__version__ = "0.1.0"
__all__ = ["Config", "project_root", "predict", "BrainTumorError", "DatasetError", "ImageReadError",
           "WeightsUnavailableError", "__version__"]


def predict(inputs, model, batch_size: int = 32, progress: bool = False):
    """Run the trained model in run folder ``model`` (or ``models/<task>`` for its newest
    run) on image files, folders or globs; one row per file (see
    :func:`braintumor.inference.predict`). Imports TensorFlow on first use."""
    from .inference import predict as run_predict

    return run_predict(inputs, model, batch_size=batch_size, progress=progress)
