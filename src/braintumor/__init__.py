"""braintumor: brain tumour detection in CT and MRI with Keras transfer learning.

Research code, not a medical device. The data layer (index, duplicate groups, splits)
imports without TensorFlow; modelling modules import it when used.
"""
from .config import Config, project_root
from .errors import BrainTumorError, DatasetError, ImageReadError, WeightsUnavailableError

__version__ = "0.1.0"
__all__ = ["Config", "project_root", "BrainTumorError", "DatasetError", "ImageReadError",
           "WeightsUnavailableError", "__version__"]
