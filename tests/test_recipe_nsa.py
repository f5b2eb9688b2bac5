"""The ``nsa`` recipe (natural synthetic anomalies): a patch of another healthy image
Poisson-blended into the brain, labelled tumour, changed only inside the brain, seeded."""
import numpy as np
import pytest

from braintumor import recipes
from braintumor.config import Config
from braintumor.recipes import nsa

pytest.importorskip("cv2")


def _head(rng, size=96, level=120, period=4.0):
    """A grey textured ellipse on black; ``period`` sets the stripes' width so donors differ."""
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 / (0.4 * size) ** 2 + (xx - size / 2) ** 2 / (0.35 * size) ** 2 < 1
    texture = level + 40 * np.sin(xx / period) + rng.normal(0, 10, (size, size))
    grey = np.where(inside, texture, 0).clip(0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2), inside


def test_blend_changes_only_the_brain_and_keeps_grey_uint8():
    rng = np.random.default_rng(0)
    target, inside = _head(rng, period=3.0)
    donor, _ = _head(rng, period=9.0)
    for seed in range(8):
        out = nsa.blend(target, donor, np.random.default_rng(seed))
        assert out.shape == target.shape and out.dtype == np.uint8
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
        changed = np.abs(out.astype(int) - target.astype(int)).max(axis=2) > 0
        assert changed.any() and not changed[~inside].any()


def test_blend_refuses_a_target_or_donor_without_brain():
    head, _ = _head(np.random.default_rng(0))
    empty = np.zeros_like(head)
    assert nsa.blend(empty, head, np.random.default_rng(0)) is None
    assert nsa.blend(head, empty, np.random.default_rng(0)) is None


class _Task:
    binary, name, classes = True, "mri", ("healthy", "tumor")


class _Split:
    def __init__(self, name="train", empty_healthy=False):
        rng = np.random.default_rng(3)
        self.task, self.name = _Task(), name
        self.images = np.stack([_head(rng, level=60 + 20 * i, period=3 + i)[0] for i in range(6)])
        if empty_healthy:
            self.images[5] = 0
        self.y = np.array([0, 0, 0, 1, 1, 0])


def test_synthetic_copies_healthy_images_labelled_tumour_and_is_seeded():
    split = _Split()
    images, y = nsa.synthetic(split, Config(seed=4))
    assert images.shape == (4, 96, 96, 3) and images.dtype == np.uint8
    assert y.dtype == split.y.dtype and (y == 1).all()
    healthy = split.images[split.y == 0]
    assert all(not np.array_equal(a, b) for a, b in zip(images, healthy))  # each copy altered
    again, _ = nsa.synthetic(_Split(), Config(seed=4))
    other, _ = nsa.synthetic(_Split(), Config(seed=5))
    val, _ = nsa.synthetic(_Split("val"), Config(seed=4))
    assert np.array_equal(images, again) and not np.array_equal(images, other)
    assert not np.array_equal(images, val)  # validation draws its own patches


def test_synthetic_makes_lesion_copies_and_skips_images_without_brain():
    images, y = nsa.synthetic(_Split(), Config(seed=4, lesion_copies=2))
    assert len(images) == len(y) == 8
    images, _ = nsa.synthetic(_Split(empty_healthy=True), Config(seed=4))
    assert len(images) == 3  # the black "healthy" image gets no copy


def test_pooled_donors_come_from_the_same_modality(monkeypatch):
    import pandas as pd

    split = _Split()
    split.rows = pd.DataFrame({"modality": ["CT", "CT", "CT", "MRI", "MRI", "MRI"]})  # healthy: 0-2 CT, 5 MRI
    pairs = []
    real = nsa.blend

    def spy(target, donor, rng):
        pairs.append((_index(split, target), _index(split, donor)))
        return real(target, donor, rng)

    monkeypatch.setattr(nsa, "blend", spy)
    images, _ = nsa.synthetic(split, Config(seed=4, lesion_copies=3))
    modality = split.rows["modality"].to_numpy()
    assert len(images) == 12 and pairs
    assert all(modality[t] == modality[d] for t, d in pairs)
    assert any(t != d for t, d in pairs if modality[t] == "CT")  # CT images 0-2 trade patches
    assert all(t == d for t, d in pairs if modality[t] == "MRI")  # image 5: the sole MRI healthy one


def _index(split, image) -> int:
    return next(i for i, im in enumerate(split.images) if np.array_equal(im, image))


def test_registered_binary_only_and_no_augmentation():
    assert "nsa" in recipes.available()
    assert not hasattr(nsa, "augmentation") and nsa.BINARY_ONLY and "\n" not in nsa.DESCRIPTION
    with pytest.raises(ValueError, match="healthy/tumour"):
        recipes.check("nsa", binary_task=False, task_name="mri_subtype")
