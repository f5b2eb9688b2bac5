"""Synthetic lesions (the ``lesions`` training recipe): a lesion lands inside the brain,
changes nothing else, is reproducible, and training records what it added."""
from __future__ import annotations

import json

import numpy as np
import pytest

from braintumor.lesions import add_lesion, brain_mask, random_region, synthesize


def _slice(size: int = 224, seed: int = 0) -> np.ndarray:
    """A grey 'head': a textured ellipse on black, like a crop-masked MRI slice."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    head = ((yy - size / 2) / (0.42 * size)) ** 2 + ((xx - size / 2) / (0.36 * size)) ** 2 < 1
    grey = np.where(head, 110 + rng.normal(0, 8, (size, size)), 0)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def test_random_region_lies_in_the_brain_and_refuses_a_black_slice():
    grey = _slice().astype(np.float32).mean(axis=2)
    inside = brain_mask(grey)
    for seed in range(10):
        region = random_region(grey, np.random.default_rng(seed))
        assert region.weight.shape == grey.shape and region.weight.dtype == np.float32
        assert region.weight[~inside].max() == 0 and 0.2 <= region.weight.max() <= 1
        assert region.shape.dtype == bool and region.shape.any()
        assert np.array_equal(region.mask, inside) and region.radius > 0
    assert random_region(grey, np.random.default_rng(0), radius_px=(20.0, 20.0)).radius == 20.0
    half = grey[::2, ::2]  # the radius range is given at 224 px and scales with the slice
    assert random_region(half, np.random.default_rng(0), radius_px=(20.0, 20.0)).radius == 10.0
    assert random_region(np.zeros((224, 224), np.float32), np.random.default_rng(0)) is None


def test_lesion_changes_only_pixels_inside_the_brain():
    image = _slice()
    inside = brain_mask(image.mean(axis=2))
    for seed in range(20):
        lesioned, weight = add_lesion(image, np.random.default_rng(seed))
        changed = np.abs(lesioned.astype(int) - image.astype(int)).max(axis=2) > 2
        assert changed.any()
        head = image.mean(axis=2) > 0
        assert not (changed & ~head).any()  # nothing painted on the background
        assert weight[~inside].max() == 0 and weight.max() > 0.2
        assert lesioned.shape == image.shape and lesioned.dtype == np.uint8


def test_lesions_are_grey_like_the_slice_and_vary():
    image = _slice()
    made = [add_lesion(image, np.random.default_rng(s))[0] for s in range(12)]
    assert all(np.array_equal(m[..., 0], m[..., 1]) and np.array_equal(m[..., 1], m[..., 2]) for m in made)
    # brighter and darker lesions both occur (kinds bright, dark and ring)
    deltas = [float((m.astype(int) - image.astype(int)).sum()) for m in made]
    assert min(deltas) < 0 < max(deltas)


def test_synthesize_is_seeded_and_skips_slices_without_brain():
    images = np.stack([_slice(seed=1), _slice(seed=2), np.zeros((224, 224, 3), np.uint8)])
    a, src_a = synthesize(images, copies=2, seed=3)
    b, src_b = synthesize(images, copies=2, seed=3)
    c, _ = synthesize(images, copies=2, seed=4)
    assert np.array_equal(a, b) and np.array_equal(src_a, src_b)
    assert not np.array_equal(a, c)
    assert src_a.tolist() == [0, 1, 0, 1]  # the empty slice has no brain to hold a lesion


def test_lesion_scales_with_image_size():
    small = _slice(size=64)
    lesioned, weight = add_lesion(small, np.random.default_rng(0))
    assert lesioned.shape == small.shape and weight.max() > 0.2


@pytest.mark.slow
def test_lesions_recipe_trains_and_records_synthetic_images(tmp_path):
    pytest.importorskip("keras")
    from braintumor.training import load_training_data, train
    from tests.test_training import make_separable

    config = make_separable(tmp_path)["config"].replace(recipe="lesions", epochs_finetune=1, epochs_frozen=5)
    loaded = load_training_data(config, progress=False)
    healthy_train = int((loaded.train.y == 0).sum())
    _, y = loaded.arrays("train")
    synthetic_y = loaded.synthetic["train"][1]
    assert len(y) == len(loaded.train.y) + len(synthetic_y)
    assert 0 < len(synthetic_y) <= healthy_train
    assert set(synthetic_y.tolist()) == {1}  # lesioned copies are tumour
    run = train(config, data=loaded, verbose=0)
    card = json.loads((run / "model_card.json").read_text())
    assert card["recipe"] == "lesions" and run.parent.name == "ct-lesions"
    assert card["training"]["synthetic_images"]["train"] == len(synthetic_y)
    assert card["validation_metrics"]["n_images"] == len(loaded.val.y)  # real validation images only


def test_recipe_lesions_refuses_multiclass_tasks():
    from braintumor.config import Config
    from braintumor.training import synthetic_lesions

    class _Task:
        binary, name, classes = False, "mri_subtype", ("glioma", "meningioma", "pituitary")

    class _Split:
        task, y, name = _Task(), np.zeros(3, int), "train"

    with pytest.raises(ValueError, match="healthy/tumour"):
        synthetic_lesions(_Split(), Config(recipe="lesions"))
