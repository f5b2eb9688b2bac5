"""The training benchmark's activation cache cuts the classifier where nothing but one tensor
crosses, so the cached path computes exactly what the whole model computes."""
import numpy as np
import pytest

from benchmarks.training import split_at_frozen
from braintumor.models.backbones import build_backbone, unfreeze_top
from braintumor.models.classifier import build_classifier


@pytest.mark.parametrize("name,size", [("efficientnet_lite0", 96), ("mobilenet_025", 64)])
def test_cached_top_computes_the_whole_model(name, size):
    backbone, _ = build_backbone(name, size, weights=None)
    model = build_classifier(backbone, 2, size, dropout=0.2)
    unfreeze_top(backbone, 0.4)
    bottom, top, cut = split_at_frozen(model, backbone)

    images = np.random.default_rng(0).uniform(0, 255, (3, size, size, 3)).astype("float32")
    whole = model(images, training=False).numpy()
    cached = top(bottom(images, training=False), training=False).numpy()
    np.testing.assert_allclose(cached, whole, rtol=1e-4, atol=1e-5)
    # Fitting the top fits the model: the same variables, and every trainable one is above the cut.
    model_ids = {id(v) for v in model.trainable_weights}
    assert {id(v) for v in top.trainable_weights} == model_ids
    assert not bottom.trainable_weights
    assert cut  # a named layer of the network


def test_a_residual_block_is_never_cut_inside():
    backbone, _ = build_backbone("efficientnet_lite0", 96, weights=None)
    model = build_classifier(backbone, 2, 96, dropout=0.2)
    for fraction in (0.2, 0.4, 0.6):
        unfreeze_top(backbone, fraction)
        _, _, cut = split_at_frozen(model, backbone)
        # the blocks with a skip connection end in their "add"; a cut elsewhere must be a
        # block without one (its projection batch norm) or the stem
        assert cut.endswith(("_add", "project_bn", "stem_activation")) or "block" not in cut, cut
