"""The optional recipe hooks training calls: ``select`` (which real rows train) and
``refine`` (a last step on the selected model), on the tiny separable dataset."""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from braintumor import recipes  # noqa: E402
from braintumor.studies.spec import code_fingerprint  # noqa: E402


def _fake_recipe(select=None, refine=None, depends=()):
    module = types.ModuleType("braintumor.recipes.fake")
    module.DESCRIPTION, module.BINARY_ONLY, module.DEPENDS = "a test recipe", True, depends
    if select:
        module.select = select
    if refine:
        module.refine = refine
    return module


@pytest.fixture
def fake(monkeypatch):
    """Install one fake recipe module as the recipe ``fake``."""
    def install(module):
        monkeypatch.setattr(recipes, "parts", lambda r: [] if r == "none" else ["fake"])
        monkeypatch.setattr(recipes, "modules", lambda r: [] if r == "none" else [module])
        return module
    return install


def _tumours_twice(split, config):
    """Every tumour row twice, healthy rows once (a stand-in for source balancing)."""
    tumour = np.flatnonzero(split.y == 1)
    return np.concatenate([np.arange(len(split.y)), tumour])


def test_select_repeats_real_rows_in_arrays_and_features(tmp_path, fake):
    from braintumor.training import _features_with_synthetic, _Run, load_training_data
    from tests.test_training import make_separable

    fake(_fake_recipe(select=_tumours_twice))
    config = make_separable(tmp_path)["config"].replace(recipe="fake")
    data = load_training_data(config, progress=False)
    full_y = data.train.y
    images, y = data.arrays("train")
    assert len(y) == len(full_y) + int((full_y == 1).sum())
    assert (y == 1).sum() == 2 * (full_y == 1).sum() and (y == 0).sum() == (full_y == 0).sum()
    first_tumour = int(np.flatnonzero(full_y == 1)[0])
    np.testing.assert_array_equal(images[len(full_y)], data.train.images[first_tumour])

    from braintumor.models.backbones import build_backbone
    from braintumor.models.classifier import build_classifier
    backbone, info = build_backbone(config.backbone, config.image_size, config.weights)
    model = build_classifier(backbone, 1, config.image_size, config.dropout)
    run = _Run(backbone_info=info)
    features, y_f = _features_with_synthetic(model, data, "train", config, run, verbose=0)
    np.testing.assert_array_equal(y_f, y)
    np.testing.assert_allclose(features[len(full_y)], features[first_tumour], rtol=1e-5)


def test_select_out_of_range_is_a_clear_error(tmp_path, fake):
    from braintumor.training import load_training_data
    from tests.test_training import make_separable

    fake(_fake_recipe(select=lambda split, config: np.array([0, 10_000])))
    config = make_separable(tmp_path)["config"].replace(recipe="fake")
    with pytest.raises(ValueError, match="select returned positions outside"):
        load_training_data(config, progress=False)


@pytest.mark.slow
def test_refine_runs_on_the_saved_model_and_is_in_the_card(tmp_path, fake):
    from braintumor.training import train
    from tests.test_training import make_separable

    def zero_head(model, data, config, verbose):
        dense = model.get_layer("logits")
        dense.set_weights([np.zeros_like(w) for w in dense.get_weights()])
        return {"head": "zeroed"}

    fake(_fake_recipe(refine=zero_head))
    config = make_separable(tmp_path)["config"].replace(recipe="fake", epochs_finetune=0, epochs_frozen=3)
    run = train(config, verbose=0)
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["recipe_steps"]["refine"] == {"fake": {"head": "zeroed"}}
    model = keras.models.load_model(run / "model.keras", compile=False)
    x = np.random.default_rng(0).integers(0, 255, (4, config.image_size, config.image_size, 3))
    np.testing.assert_allclose(model.predict(x.astype("float32"), verbose=0), 0.5, atol=1e-6)


def test_two_selecting_recipes_are_refused(monkeypatch):
    a, b = _fake_recipe(select=_tumours_twice), _fake_recipe(select=_tumours_twice)
    monkeypatch.setattr(recipes, "parts", lambda r: ["a", "b"])
    monkeypatch.setattr(recipes, "modules", lambda r: [a, b])
    with pytest.raises(ValueError, match="both choose the training rows"):
        recipes.check("a+b", binary_task=True)


def test_declared_dependencies_count_in_the_fingerprint(tmp_path, fake):
    package = tmp_path / "pkg"
    (package / "audit").mkdir(parents=True)
    (package / "training.py").write_text("x = 1\n")
    (package / "audit" / "sources.py").write_text("y = 1\n")
    fake(_fake_recipe(depends=("audit/sources.py",)))
    before = code_fingerprint("fake", package), code_fingerprint("none", package)
    (package / "audit" / "sources.py").write_text("y = 2\n")
    after = code_fingerprint("fake", package), code_fingerprint("none", package)
    assert before[0] != after[0]  # the recipe that imports it sees the change
    assert before[1] == after[1]  # other arms do not
