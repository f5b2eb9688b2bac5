"""Training recipes as modules: names, combination, task checks, and study keys that only
count the arm's own recipe code."""
import shutil
from pathlib import Path

import pytest

import braintumor
from braintumor import recipes
from braintumor.studies.spec import code_fingerprint


def test_available_lists_none_and_one_name_per_module():
    names = recipes.available()
    assert names[0] == "none" and "lesions" in names
    assert "__init__" not in names


def test_parts_splits_combinations_and_drops_none():
    assert recipes.parts("none") == []
    assert recipes.parts("lesions") == ["lesions"]
    assert recipes.parts("none+lesions") == ["lesions"]
    with pytest.raises(ValueError, match="unknown recipe 'nosuch'.*available: none, "):
        recipes.parts("lesions+nosuch")


def test_check_refuses_a_binary_only_recipe_on_a_multiclass_task():
    recipes.check("lesions", binary_task=True)
    with pytest.raises(ValueError, match="healthy/tumour task, not 'mri_subtype'"):
        recipes.check("lesions", binary_task=False, task_name="mri_subtype")


def test_every_recipe_module_has_the_interface():
    for module in recipes.modules("+".join(recipes.available())):
        assert isinstance(module.DESCRIPTION, str) and module.DESCRIPTION
        assert isinstance(module.BINARY_ONLY, bool)
        hooks = [h for h in ("synthetic", "augmentation", "select", "refine") if hasattr(module, h)]
        assert hooks, f"{module.__name__} changes nothing"
        assert all(callable(getattr(module, h)) for h in hooks)
        if hasattr(module, "augmentation"):
            assert isinstance(module.augmentation(0), list) and module.augmentation(0)


@pytest.fixture()
def package_copy(tmp_path) -> Path:
    src = Path(braintumor.__file__).resolve().parent
    dst = tmp_path / "braintumor"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_a_new_recipe_file_leaves_other_arms_current(package_copy):
    before = {r: code_fingerprint(r, package_copy) for r in ("none", "lesions")}
    (package_copy / "recipes" / "brandnew.py").write_text("DESCRIPTION = 'x'\nBINARY_ONLY = False\n")
    assert {r: code_fingerprint(r, package_copy) for r in ("none", "lesions")} == before


def test_editing_a_recipe_makes_only_its_arms_stale(package_copy):
    none, lesions = code_fingerprint("none", package_copy), code_fingerprint("lesions", package_copy)
    with open(package_copy / "recipes" / "lesions.py", "a") as f:
        f.write("\n# changed\n")
    assert code_fingerprint("none", package_copy) == none
    assert code_fingerprint("lesions", package_copy) != lesions


def test_editing_training_code_makes_every_arm_stale_but_cli_does_not(package_copy):
    none = code_fingerprint("none", package_copy)
    with open(package_copy / "cli" / "models.py", "a") as f:
        f.write("\n# help text\n")
    assert code_fingerprint("none", package_copy) == none
    with open(package_copy / "training.py", "a") as f:
        f.write("\n# changed\n")
    assert code_fingerprint("none", package_copy) != none


def test_a_changed_config_default_stales_only_the_runs_whose_config_it_changes(package_copy):
    """config.py is keyed by value: its defaults reach a run's key through the resolved Config."""
    from braintumor.config import Config
    from braintumor.studies.spec import run_key

    none = code_fingerprint("none", package_copy)
    config = package_copy / "config.py"
    text = config.read_text()
    changed = text.replace("TASK_DEFAULTS: dict[str, dict] = {",
                           'TASK_DEFAULTS: dict[str, dict] = {"pooled": {"recipe": "nsa"}, ')
    assert changed != text, "config.py no longer declares TASK_DEFAULTS as this test expects"
    config.write_text(changed)
    assert code_fingerprint("none", package_copy) == none
    explicit = Config(task="mri", preprocess="none", recipe="none")
    defaulted = Config(task="mri").replace(preprocess="none", recipe="none")  # whatever the defaults are
    assert run_key(explicit, "m", none) == run_key(defaulted, "m", none)
    assert run_key(explicit, "m", none) != run_key(explicit.replace(recipe="nsa"), "m", none)
