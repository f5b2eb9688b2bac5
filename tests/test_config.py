"""The one settings tree: round trip through model cards, nested sections, and the CLI
options generated from it."""
from __future__ import annotations

import dataclasses
import json

import pytest

from braintumor.cli import build_parser, config_from_args
from braintumor.config import AuditSettings, Config, EvaluationSettings


def test_defaults_are_the_published_schedule():
    cfg = Config()
    assert (cfg.lr_finetune, cfg.epochs_finetune, cfg.epochs_frozen) == (2e-4, 2, 60)
    assert cfg.audit == AuditSettings() and cfg.evaluation == EvaluationSettings()


def test_round_trip_through_json_and_older_cards():
    cfg = Config(task="mri", split_fractions=(0.6, 0.2, 0.2)).replace(audit={"limit_per_class": 7})
    back = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    old_card = {k: v for k, v in cfg.to_dict().items() if k not in ("audit", "evaluation")}
    old_card["no_longer_a_field"] = 1
    assert Config.from_dict(old_card).audit == AuditSettings()


def parse(*argv) -> Config:
    return config_from_args(build_parser().parse_args(list(argv)))


def test_cli_options_come_from_config_fields():
    assert parse("train", "--task", "ct") == Config()  # options left out keep the defaults
    cfg = parse("train", "--task", "mri", "--quick", "--no-augment", "--random-weights",
                "--lr-finetune", "1e-3", "--split-name", "other", "--data-dir", "/x")
    assert (cfg.task, cfg.quick, cfg.augment, cfg.weights, cfg.lr_finetune) == ("mri", True, False, None, 1e-3)
    assert (cfg.split_name, cfg.data_dir) == ("other", "/x")
    cfg = parse("audit-shortcuts", "--limit-per-class", "40", "--resamples", "200", "--tasks", "ct")
    assert cfg.audit == dataclasses.replace(AuditSettings(), limit_per_class=40, n_resamples=200, tasks=("ct",))
    cfg = parse("evaluate", "--model", "m", "--resamples", "100", "--rule", "sensitivity")
    assert cfg.evaluation == EvaluationSettings(rule="sensitivity", n_resamples=100)
    assert parse("split", "--fractions", "0.6", "0.2", "0.2").split_fractions == (0.6, 0.2, 0.2)


def test_every_data_command_takes_split_name():
    parser = build_parser()
    for command in ("index", "audit-duplicates", "split", "train", "evaluate", "audit-shortcuts"):
        extra = {"train": ["--task", "ct"], "evaluate": ["--model", "m"]}.get(command, [])
        assert config_from_args(parser.parse_args([command, *extra, "--split-name", "s"])).split_name == "s"
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "--model", "m", "--rule", "nonsense"])


@pytest.fixture
def study_defaults(monkeypatch):
    """Task defaults as the study might set them: MRI crop-masked with a recipe, CT plain."""
    import braintumor.config as config

    monkeypatch.setattr(config, "TASK_DEFAULTS", {"mri": {"preprocess": "crop-mask", "recipe": "nsa"}})


def test_unset_preprocessing_and_recipe_take_the_tasks_defaults(study_defaults):
    assert (Config(task="mri").preprocess, Config(task="mri").recipe) == ("crop-mask", "nsa")
    assert (Config(task="ct").preprocess, Config(task="ct").recipe) == ("none", "none")
    assert Config(task="mri", recipe="none").recipe == "none"  # said explicitly: kept
    assert Config(task="mri").to_dict()["recipe"] == "nsa"  # resolved, so a study's run key sees it


def test_a_new_task_brings_its_defaults_unless_the_setting_was_chosen(study_defaults):
    mri = Config(task="mri")
    assert mri.replace(task="mri_subtype").recipe == "none"  # nsa would not fit a 3-class task
    assert mri.replace(task="mri_subtype", recipe="lesions").recipe == "lesions"
    chosen = Config(task="ct", preprocess="crop-mask-zscore")
    assert chosen.replace(task="mri").preprocess == "crop-mask-zscore" and chosen.replace(task="mri").recipe == "nsa"
    assert parse("train", "--task", "mri").recipe == "nsa"
    assert parse("train", "--task", "mri", "--recipe", "none", "--preprocess", "none").recipe == "none"


def test_unset_fine_tuning_epochs_take_the_tasks_default(monkeypatch):
    import braintumor.config as config

    monkeypatch.setattr(config, "TASK_DEFAULTS", {"mri": {"preprocess": "crop-mask", "epochs_finetune": 4}})
    assert Config(task="mri").epochs_finetune == 4 and Config(task="ct").epochs_finetune == 2
    assert Config(task="mri", epochs_finetune=2).epochs_finetune == 2  # said explicitly: kept
    assert Config(task="mri").replace(task="ct").epochs_finetune == 2
    assert Config(task="ct").replace(task="mri").epochs_finetune == 4
    assert parse("train", "--task", "mri").epochs_finetune == 4
    assert parse("train", "--task", "mri", "--epochs-finetune", "1").epochs_finetune == 1


def test_an_older_card_without_the_settings_means_plain(study_defaults):
    card = {k: v for k, v in Config(task="mri").to_dict().items() if k not in ("preprocess", "recipe")}
    old = Config.from_dict(card)
    assert (old.preprocess, old.recipe) == ("none", "none")


def test_the_shipped_task_defaults_name_settings_that_exist_and_fit_their_task():
    from braintumor import recipes
    from braintumor.config import PLAIN, TASK_DEFAULTS, defaults_note, task_defaults
    from braintumor.data.tasks import TASKS
    from braintumor.preprocess import get_preprocessor

    assert set(TASK_DEFAULTS) <= set(TASKS)
    for name, task in TASKS.items():
        default = task_defaults(name)
        get_preprocessor(default["preprocess"])  # raises for an unknown name
        recipes.check(default["recipe"], task.binary, name)  # raises for a recipe the task cannot use
        note = defaults_note(Config(task=name))
        assert note["this_run_uses_it"] and note["recipe"] == Config(task=name).recipe
        assert ("round 2" in note["chosen_by"]) == (name in TASK_DEFAULTS)
    assert not defaults_note(Config(task="mri", recipe="none", preprocess="none"))["this_run_uses_it"] \
        or task_defaults("mri") == PLAIN
    # the schedule is part of the default: MRI's recipe at another epoch count is not the default run
    other = {2: 4, 4: 2}.get(task_defaults("mri")["epochs_finetune"], 2)
    assert not defaults_note(Config(task="mri", epochs_finetune=other))["this_run_uses_it"]
