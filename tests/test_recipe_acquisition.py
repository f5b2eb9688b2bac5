"""The ``acquisition`` recipe: its layers keep shape, range, grey and black background, are
the identity outside training, repeat with a seed, each change what it should, and run in
``tf.data`` and in a training run."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from braintumor import recipes
from braintumor.recipes import acquisition

keras = pytest.importorskip("keras")

SIZE = 64
MARGIN = 8  # px around the head that blur, resampling and JPEG blocks may touch


def heads(n: int = 6, size: int = SIZE, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grey ``float32 (n, size, size, 3)`` 0–255 "heads": a textured disc on exact black,
    and the mask of pixels at least ``MARGIN`` px outside every disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c, r = (size - 1) / 2, size * 0.33
    disc = (yy - c) ** 2 + (xx - c) ** 2 < r ** 2
    far = (yy - c) ** 2 + (xx - c) ** 2 > (r + MARGIN) ** 2
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        smooth = 60 + 80 * np.exp(-((yy - rng.uniform(20, 44)) ** 2 + (xx - rng.uniform(20, 44)) ** 2) / 150)
        out[i] = np.where(disc, smooth + rng.normal(0, 12, (size, size)), 0)
    out = np.clip(out, 0, 255).round()
    return np.repeat(out[..., None], 3, axis=-1), far


def layer(name: str, probability: float = 1.0, seed: int = 1, **kwargs):
    return getattr(acquisition, name)(probability=probability, seed=seed, **kwargs)


def run(lay, x, training=True) -> np.ndarray:
    return np.asarray(lay(x, training=training))


def high_frequency(x: np.ndarray) -> float:
    """Mean squared Laplacian of the first channel: high-frequency energy."""
    g = x[..., 0]
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return float((lap ** 2).mean())


def test_the_recipe_is_listed_and_has_the_interface():
    assert "acquisition" in recipes.available()
    assert recipes.parts("lesions+acquisition") == ["lesions", "acquisition"]
    recipes.check("acquisition", binary_task=False, task_name="mri_subtype")  # any task
    assert not hasattr(acquisition, "synthetic")  # phase 1 stays clean
    layers = acquisition.augmentation(0)
    assert [type(lay).__name__ for lay in layers] == list(acquisition.LAYERS)
    assert all(isinstance(lay, keras.layers.Layer) and lay.probability == acquisition.PROBABILITY
               for lay in layers)
    assert len({lay.seed for lay in layers}) == len(layers)  # one stream per layer


def test_listing_the_recipe_does_not_import_keras():
    code = ("import sys; from braintumor import recipes; recipes.check('acquisition', True); "
            "recipes.describe('acquisition'); print('keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", acquisition.LAYERS)
def test_shape_dtype_range_grey_and_black_background_are_kept(name):
    x, far = heads()
    out = run(layer(name), x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_allclose(out[..., 1], out[..., 0], atol=1e-3)  # grey stays grey: no colour cue
    np.testing.assert_allclose(out[..., 2], out[..., 0], atol=1e-3)
    assert np.abs(out[:, far]).max() == 0  # black stays black away from the head
    assert np.abs(out - x).mean() > 0.3  # and the transform did something


@pytest.mark.parametrize("name", ["RandomBiasField", "RandomNoise"])
def test_signal_transforms_leave_a_lifted_flat_background_flat(name):
    # The usual augmentation's brightness/contrast can lift the black background to a
    # constant; the bias field and the noise must not texture it.
    x, _ = heads()
    lifted = np.where(x > 0, x, 20.0).astype(np.float32)
    out = run(layer(name), lifted)
    background = np.broadcast_to((x == 0).all(axis=-1, keepdims=True), x.shape)
    assert np.abs(out[background] - 20.0).max() < 1e-3


@pytest.mark.parametrize("name", acquisition.LAYERS)
def test_identity_outside_training_or_at_probability_zero(name):
    x, _ = heads(3)
    np.testing.assert_array_equal(run(layer(name), x, training=False), x)
    np.testing.assert_array_equal(run(layer(name, probability=0.0), x), x)


def test_probability_applies_to_some_images_only():
    x, _ = heads(32, size=32)
    out = run(layer("RandomGamma", probability=0.5, seed=3), x)
    changed = np.abs(out - x).reshape(len(x), -1).max(axis=1) > 0.5
    assert 5 < changed.sum() < 27


def test_same_seed_repeats_different_seed_differs():
    x, _ = heads(4)

    def chain(seed):
        out = x
        for lay in acquisition.augmentation(seed):
            lay.probability = 1.0
            out = lay(out, training=True)
        return np.asarray(out)

    np.testing.assert_array_equal(chain(3), chain(3))
    assert np.abs(chain(3) - chain(4)).mean() > 1.0


def test_each_transform_changes_what_it_should():
    x, _ = heads(8)
    inside = x[..., 0] > 0
    base_hf = high_frequency(x)
    assert high_frequency(run(layer("RandomBlur"), x)) < 0.8 * base_hf
    assert high_frequency(run(layer("RandomResolution", min_factor=0.4), x)) < 0.8 * base_hf
    jpeg = run(layer("RandomJpeg", min_quality=30, max_quality=30), x)
    assert (np.abs(jpeg - x) >= 1).mean() > 0.2  # quality 30 changes many pixels
    noisy = run(layer("RandomNoise", max_sigma=8.0), x)
    assert np.abs(noisy - x)[inside].mean() > 0.5 and high_frequency(noisy) > base_hf
    gamma = run(layer("RandomGamma", min_gamma=1.5, max_gamma=1.6), x)
    assert gamma[inside].mean() < x[inside].mean() - 20  # a gamma > 1 darkens the mid-greys
    window = run(layer("RandomWindow", max_low=0.0, min_high=1.2, max_high=1.25), x)
    assert window[inside].std() < 0.85 * x[inside].std()  # a wider window: less contrast
    field = run(layer("RandomBiasField", amplitude=0.25), x)
    ratio = field[..., 0][inside] / x[..., 0][inside]
    assert 0.75 <= ratio.min() and ratio.max() <= 1.3 and ratio.std() > 0.01


def test_layers_serialise_with_their_settings():
    lay = layer("RandomJpeg", probability=0.7, seed=9, min_quality=40, max_quality=80)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(lay))
    assert type(again) is type(lay)
    assert (again.probability, again.seed, again.min_quality, again.max_quality) == (0.7, 9, 40, 80)


def test_a_training_batch_runs_in_graph_mode():
    from braintumor.pipeline import make_dataset

    x, _ = heads(10)
    y = np.array([0, 1] * 5)
    ds = make_dataset(x.astype(np.uint8), y, 2, batch_size=8, training=True, seed=0,
                      extra_augmentation=acquisition.augmentation(0))
    batches = [b for b, _ in ds]
    assert [tuple(b.shape) for b in batches] == [(8, SIZE, SIZE, 3), (2, SIZE, SIZE, 3)]
    assert all(b.dtype.name == "float32" and 0 <= float(b.numpy().min()) and float(b.numpy().max()) <= 255
               for b in batches)


@pytest.mark.slow
def test_acquisition_recipe_trains_end_to_end(tmp_path):
    from braintumor.training import load_training_data, train, recipe_augmentation
    from tests.test_training import make_separable

    config = make_separable(tmp_path)["config"].replace(recipe="acquisition", epochs_finetune=1,
                                                         epochs_frozen=5)
    assert [type(lay).__name__ for lay in recipe_augmentation(config)] == list(acquisition.LAYERS)
    loaded = load_training_data(config, progress=False)
    assert loaded.synthetic == {}  # no extra images
    run_dir = train(config, data=loaded, verbose=0)
    card = json.loads((run_dir / "model_card.json").read_text())
    assert card["recipe"] == "acquisition" and run_dir.parent.name == "ct-acquisition"
    assert card["training"]["epochs_run"]["finetune"] == 1  # phase 2 ran with the layers
    assert card["training"]["synthetic_images"] == {"train": 0, "val": 0}
