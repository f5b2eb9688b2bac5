"""The ``patches`` recipe (foreign patch interpolation): one patched copy per healthy image,
labelled tumour, changed only inside the brain, deterministic per seed."""
import numpy as np
import pytest

from braintumor import recipes
from braintumor.config import Config
from braintumor.recipes import patches


def _head(rng, size=96, level=120):
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 / (0.4 * size) ** 2 + (xx - size / 2) ** 2 / (0.35 * size) ** 2 < 1
    grey = np.where(inside, level + rng.normal(0, 20, (size, size)), 0).clip(0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2), inside


def test_patch_changes_only_the_brain_and_keeps_grey_uint8():
    rng = np.random.default_rng(0)
    target, inside = _head(rng, level=80)
    donor, _ = _head(rng, level=200)
    out = patches.patch(target, donor, np.random.default_rng(1))
    assert out.shape == target.shape and out.dtype == np.uint8
    assert (out[..., 0] == out[..., 1]).all()  # still grey
    changed = np.abs(out.astype(int) - target.astype(int)).max(axis=2) > 0
    assert changed.any() and not changed[~inside].any()
    assert out[changed].mean() > target[changed].mean()  # brighter donor tissue came in


def test_patch_refuses_a_slice_without_brain():
    empty = np.zeros((96, 96, 3), np.uint8)
    assert patches.patch(empty, empty, np.random.default_rng(0)) is None


class _Task:
    binary, name, classes = True, "mri", ("healthy", "tumor")


class _Split:
    def __init__(self, name="train"):
        rng = np.random.default_rng(3)
        self.task, self.name = _Task(), name
        self.images = np.stack([_head(rng, level=60 + 20 * i)[0] for i in range(6)])
        self.y = np.array([0, 0, 0, 1, 1, 0])


def test_synthetic_copies_each_healthy_image_once_labelled_tumour_and_is_seeded():
    images, y = patches.synthetic(_Split(), Config(seed=4))
    assert len(images) == 4 and (y == 1).all()
    again, _ = patches.synthetic(_Split(), Config(seed=4))
    other, _ = patches.synthetic(_Split(), Config(seed=5))
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    val, _ = patches.synthetic(_Split("val"), Config(seed=4))
    assert not np.array_equal(images, val)  # validation draws its own regions


def test_registered_and_binary_only():
    assert "patches" in recipes.available()
    with pytest.raises(ValueError, match="healthy/tumour"):
        recipes.check("patches", binary_task=False, task_name="mri_subtype")
