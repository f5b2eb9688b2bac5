"""Training recipes: what a run adds to plain transfer learning so that it looks at the tumour.

A recipe is one module in this package (``lesions.py`` is the recipe ``lesions``) with:

* ``DESCRIPTION``: one line for ``--help`` and the model card;
* ``BINARY_ONLY``: whether it needs a healthy/tumour task;

and one or more of the hooks:

* ``synthetic(split, config)``: extra ``(images, y)`` for the train or val split, or ``None``;
* ``augmentation(seed)``: extra Keras layers for phase 2's augmentation;
* ``select(split, config)``: positions of the split's real rows to train on (repeats allowed:
  source-balanced sampling), or ``None`` for all; one recipe of a combination at most;
* ``refine(model, data, config, verbose)``: a last step on the selected model (e.g. refit
  the head on data where the shortcut does not hold); returns a note for the model card;
* ``DEPENDS``: package files (relative to ``braintumor/``) the recipe imports whose code
  also decides its result, so the study counts them in the run's code fingerprint.

Recipes combine with ``+`` (``lesions+acquisition``). One file per recipe on purpose:
a study keys each finished run by the code it ran (:func:`braintumor.studies.spec.code_fingerprint`
counts only the arm's own recipe modules), so adding a recipe leaves other arms' runs current.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

NONE = "none"


def available() -> tuple[str, ...]:
    """Recipe names: ``none`` and one per module of this package."""
    here = Path(__file__).resolve().parent
    return (NONE,) + tuple(sorted(p.stem for p in here.glob("*.py") if not p.stem.startswith("_")))


def parts(recipe: str) -> list[str]:
    """The single recipes of ``recipe`` (``"lesions+acquisition"`` → both), ``none`` dropped."""
    names = [p.strip() for p in str(recipe).split("+") if p.strip() and p.strip() != NONE]
    unknown = [n for n in names if n not in available()]
    if unknown:
        raise ValueError(f"unknown recipe {unknown[0]!r}; available: {', '.join(available())} "
                         "(combine with '+', e.g. lesions+acquisition)")
    return names


def modules(recipe: str) -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in parts(recipe)]


def check(recipe: str, binary_task: bool, task_name: str = "") -> None:
    """Raise ``ValueError`` for an unknown recipe or one the task cannot use."""
    for name, module in zip(parts(recipe), modules(recipe)):
        if module.BINARY_ONLY and not binary_task:
            raise ValueError(f"recipe {name!r} needs a healthy/tumour task, not {task_name!r}")
    selecting = [n for n, m in zip(parts(recipe), modules(recipe)) if hasattr(m, "select")]
    if len(selecting) > 1:
        raise ValueError(f"recipes {' and '.join(selecting)} both choose the training rows; "
                         "combine at most one of them")


def depends(recipe: str) -> list[str]:
    """Package files (besides their own modules) the run's recipes declare they depend on."""
    return sorted({path for m in modules(recipe) for path in getattr(m, "DEPENDS", ())})


def describe(recipe: str) -> str:
    return "; ".join(f"{n}: {m.DESCRIPTION}" for n, m in zip(parts(recipe), modules(recipe))) or "none"
