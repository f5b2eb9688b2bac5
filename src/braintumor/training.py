"""Two-phase transfer learning: a new head on a frozen backbone, then fine-tuning.

Phase 1 trains only the head. With the backbone frozen (and its BatchNorm in inference
mode) the pooled features of an image never change, so they are extracted once and the
head trains on them in seconds instead of running the backbone every epoch. Phase 2
unfreezes the top of the backbone, keeps BatchNorm in inference mode, and fine-tunes the
whole model end to end on augmented images at a lower, decaying learning rate (as in the
Keras transfer-learning guide). Early stopping and checkpointing watch validation AUC.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import recipes
from .config import Config, result_name
from .data.index import dataset_fingerprint
from .data.tasks import Task, class_weights, label_targets
from .files import atomic_path
from .models import modelcard
from .models.classifier import (build_classifier, extract_features, head_activation, head_units,
                                loss_and_metrics)
from .pipeline import make_dataset
from .reporting import provenance
from .study import Split, load_split

DATASET = "Kaggle murtozalikhon/brain-tumor-multimodal-image-ct-and-mri (CC BY-NC-SA 4.0)"
LIMITATIONS = [
    "Healthy and tumour images come from different source collections; accuracy partly "
    "reflects source style, not pathology (see reports/audit).",
    "2-D slices without patient IDs: the split is by duplicate group, not by patient.",
]


@dataclass
class TrainingData:
    """The two splits one run trains and validates on, plus any synthetic images the
    recipe adds to them (``{"train": (images, y), "val": (images, y)}``)."""

    train: Split
    val: Split
    synthetic: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # A recipe's choice of real rows per split (positions, may repeat: source balancing);
    # a split without one uses all its rows once.
    selection: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def task(self) -> Task:
        return self.train.task

    def real(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, y)`` of the real rows of ``split`` the recipe selected."""
        s = getattr(self, split)
        if split not in self.selection:
            return s.images, s.y
        idx = self.selection[split]
        return s.images[idx], s.y[idx]

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, y)`` of ``split``: the selected real rows, then the synthetic images."""
        images, y = self.real(split)
        if split not in self.synthetic:
            return images, y
        extra, y_extra = self.synthetic[split]
        return np.concatenate([images, extra]), np.concatenate([y, y_extra])


def synthetic_lesions(split: Split, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """The ``lesions`` recipe's extra images for one split (:mod:`braintumor.recipes.lesions`)."""
    from .recipes import lesions

    recipes.check("lesions", split.task.binary, split.task.name)
    return lesions.synthetic(split, config)


def load_training_data(config: Config, progress: bool = True) -> TrainingData:
    """The task's train/val rows of the committed manifest (quick subsets in a quick run),
    plus the synthetic images of the run's recipes (:mod:`braintumor.recipes`) in both
    splits (validation too, so early stopping rewards what the recipe teaches)."""
    data = TrainingData(load_split(config, "train", progress=progress),
                        load_split(config, "val", progress=progress))
    recipes.check(config.recipe, data.task.binary, data.task.name)
    for module in recipes.modules(config.recipe):
        for name in ("train", "val"):
            split = getattr(data, name)
            chosen = module.select(split, config) if hasattr(module, "select") else None
            if chosen is not None:
                data.selection[name] = _checked_selection(chosen, len(split.rows), module.__name__)
            extra = module.synthetic(split, config) if hasattr(module, "synthetic") else None
            if extra is not None:
                data.synthetic[name] = _appended(data.synthetic.get(name), extra)
    return data


def _checked_selection(idx, n_rows: int, recipe: str) -> np.ndarray:
    idx = np.asarray(idx, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= n_rows:
        raise ValueError(f"{recipe}.select returned positions outside 0..{n_rows - 1} (or none)")
    return idx


def _appended(a: tuple[np.ndarray, np.ndarray] | None, b: tuple[np.ndarray, np.ndarray]):
    return b if a is None else (np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]))


def distribution_strategy():
    """Mixed precision on GPUs; MirroredStrategy across several; the default on CPU."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def _callbacks(run_dir: Path, patience: int):
    import keras

    return [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=patience,
                                      restore_best_weights=True, verbose=1),
        keras.callbacks.ModelCheckpoint(str(run_dir / "checkpoint.keras"), monitor="val_auc",
                                        mode="max", save_best_only=True),
    ]


def images_only(x, _labels):
    """Drop the labels of an ``(images, labels)`` dataset element."""
    return x


def train_head_on_features(model, f_train, y_train, f_val, y_val, n_classes: int, config: Config,
                           verbose: int):
    """Phase 1: fit a copy of the head (dropout + dense) on cached pooled features,
    then copy its weights into the classifier."""
    import keras

    inputs = keras.Input((f_train.shape[1],))
    x = keras.layers.Dropout(config.dropout)(inputs)
    dense = keras.layers.Dense(head_units(n_classes), dtype="float32")
    out = keras.layers.Activation(head_activation(n_classes))(dense(x))
    head = keras.Model(inputs, out)
    loss, metrics = loss_and_metrics(n_classes)
    head.compile(optimizer=keras.optimizers.Adam(config.lr_frozen), loss=loss, metrics=metrics)
    hist = head.fit(f_train, label_targets(y_train, n_classes),
                    validation_data=(f_val, label_targets(y_val, n_classes)), epochs=config.epochs_frozen,
                    batch_size=config.batch_size, class_weight=class_weights(y_train, n_classes),
                    # Validation loss, not AUC: AUC saturates within a few epochs while the
                    # head's bias and scale (hence accuracy at a threshold) keep improving.
                    callbacks=[keras.callbacks.EarlyStopping(monitor="val_loss", patience=8,
                                                             restore_best_weights=True)],
                    verbose=verbose)
    model.get_layer("logits").set_weights(dense.get_weights())
    return hist.history


def new_run_id(config: Config) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    tag = "".join(f"-{v}" for v in (config.preprocess, config.recipe) if v != "none")
    return f"{stamp}-{Path(config.backbone).stem}{tag}{'-quick' if config.quick else ''}"


def validation_summary(task: Task, y_val: np.ndarray, probs: np.ndarray) -> dict:
    """Validation accuracy and AUC for the model card (the full report is evaluate's job)."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

    if task.binary:
        p = probs.reshape(-1)
        pred = (p >= 0.5).astype(int)
        auc = roc_auc_score(y_val, p) if len(set(y_val)) == 2 else float("nan")
    else:
        pred = probs.argmax(axis=1)
        auc = roc_auc_score(y_val, probs, multi_class="ovr", average="macro",
                            labels=list(range(len(task.classes))))
    return {"n_images": int(len(y_val)), "accuracy": float(accuracy_score(y_val, pred)),
            "balanced_accuracy": float(balanced_accuracy_score(y_val, pred)),
            "auc": float(auc), "threshold_used": 0.5 if task.binary else None}


@dataclass
class _Run:
    """What a training run produces besides the model, for its card."""

    histories: dict[str, dict] = field(default_factory=dict)  # per phase: Keras history
    seconds: dict[str, float] = field(default_factory=dict)
    finetuned_layers: int = 0
    backbone_info: dict = field(default_factory=dict)
    kept_phase: str = "frozen"
    phase_selection: dict = field(default_factory=dict)  # per phase: validation AUC and loss
    refinements: dict = field(default_factory=dict)  # per recipe with a refine step: what it did


FEATURE_CACHE_VERSION = "v1"


def frozen_features(model, split: Split, config: Config, run: _Run, verbose: int) -> np.ndarray:
    """Pooled features of a split's images under the frozen backbone.

    With pretrained weights they depend only on the images, the backbone's weights, the
    image size and the preprocessing, so they are cached under ``data/cache/features/`` and
    shared by every seed and recipe of a task: a head-only run after the first costs seconds.
    """
    if config.weights is None:  # random initialisation differs per seed
        return extract_features(model, split.images, config.batch_size, verbose)
    # The weights' SHA-256, not where the file lies: a moved checkout keeps its cache.
    ident = json.dumps({k: v for k, v in run.backbone_info.items() if k != "weight_source"},
                       sort_keys=True, default=str)
    text = "\n".join([*split.rows["sha256"], ident, str(config.image_size), config.preprocess,
                      FEATURE_CACHE_VERSION])
    path = config.cache_path / "features" / f"pooled-{hashlib.sha256(text.encode()).hexdigest()[:20]}.npy"
    if path.is_file():
        return np.load(path)
    features = extract_features(model, split.images, config.batch_size, verbose)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, features)
    return features


def _features_with_synthetic(model, data: TrainingData, name: str, config: Config, run: _Run,
                             verbose: int) -> tuple[np.ndarray, np.ndarray]:
    split = getattr(data, name)
    real, y_real = frozen_features(model, split, config, run, verbose), split.y
    if name in data.selection:  # features are cached for the whole split, then chosen
        real, y_real = real[data.selection[name]], y_real[data.selection[name]]
    if name not in data.synthetic:
        return real, y_real
    images, y = data.synthetic[name]
    synthetic = extract_features(model, images, config.batch_size, verbose)
    return np.concatenate([real, synthetic]), np.concatenate([y_real, y])


def _phase1(model, data: TrainingData, config: Config, run: _Run, verbose: int) -> None:
    """The head on cached pooled features of the frozen backbone."""
    n_classes = len(data.task.classes)
    t0 = time.perf_counter()
    f_train, y_train = _features_with_synthetic(model, data, "train", config, run, verbose)
    f_val, y_val = _features_with_synthetic(model, data, "val", config, run, verbose)
    run.seconds["extract"] = time.perf_counter() - t0
    run.histories["frozen"] = train_head_on_features(model, f_train, y_train, f_val, y_val,
                                                     n_classes, config, verbose)
    run.seconds["phase1"] = time.perf_counter() - t0


def recipe_augmentation(config: Config) -> list:
    """The phase-2 augmentation layers the run's recipes add (none for ``none``/``lesions``)."""
    return [layer for m in recipes.modules(config.recipe) if hasattr(m, "augmentation")
            for layer in m.augmentation(config.seed)]


def _phase2(model, backbone, strategy, data: TrainingData, config: Config, run_dir: Path, run: _Run,
            verbose: int) -> None:
    """Fine-tune the top of the backbone end to end on augmented images."""
    import keras

    from .models.backbones import unfreeze_top

    run.histories["finetune"], run.seconds["phase2"] = {}, 0.0
    if config.epochs_finetune <= 0 or config.finetune_fraction <= 0:
        return
    n_classes = len(data.task.classes)
    (x_train, y_train), (x_val, y_val) = data.arrays("train"), data.arrays("val")
    with strategy.scope():
        run.finetuned_layers = unfreeze_top(backbone, config.finetune_fraction)
        steps = config.epochs_finetune * int(np.ceil(len(y_train) / config.batch_size))
        schedule = keras.optimizers.schedules.CosineDecay(config.lr_finetune, steps, alpha=0.05)
        loss, metrics = loss_and_metrics(n_classes)
        model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)
    train_ds = make_dataset(x_train, y_train, n_classes, config.batch_size, training=True,
                            seed=config.seed, augment=config.augment,
                            extra_augmentation=recipe_augmentation(config))
    val_ds = make_dataset(x_val, y_val, n_classes, config.batch_size, training=False, seed=config.seed)
    t0 = time.perf_counter()
    hist = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs_finetune, shuffle=False,
                     class_weight=class_weights(y_train, n_classes),
                     callbacks=_callbacks(run_dir, patience=3), verbose=verbose)
    run.seconds["phase2"] = time.perf_counter() - t0
    run.histories["finetune"] = hist.history


def validation_scores(task: Task, y_val: np.ndarray, probs: np.ndarray) -> dict:
    """Validation AUC (macro one-vs-rest for multi-class) and log loss of one phase's model."""
    from sklearn.metrics import log_loss, roc_auc_score

    n_classes = len(task.classes)
    if not np.isfinite(probs).all():  # a diverged fine-tune: never the better model
        return {"val_auc": float("nan"), "val_loss": float("inf")}
    if task.binary:
        p = np.clip(probs.reshape(-1).astype(float), 1e-7, 1 - 1e-7)
        auc = roc_auc_score(y_val, p) if len(set(y_val)) == 2 else float("nan")
        loss = log_loss(y_val, p, labels=[0, 1])
    else:
        q = np.clip(probs.astype(float), 1e-7, 1.0)
        q = q / q.sum(axis=1, keepdims=True)
        auc = roc_auc_score(y_val, q, multi_class="ovr", average="macro", labels=list(range(n_classes)))
        loss = log_loss(y_val, q, labels=list(range(n_classes)))
    return {"val_auc": float(auc), "val_loss": float(loss)}


def finetune_is_better(frozen: dict, finetune: dict) -> bool:
    """Whether the fine-tuned model beats the head-only one on validation: higher AUC, or
    the same AUC (to 1e-6) and lower log loss. A tie keeps the head (the simpler model)."""
    a, b = frozen["val_auc"], finetune["val_auc"]
    if not np.isfinite(b):
        return False
    if not np.isfinite(a) or b > a + 1e-6:
        return True
    return abs(b - a) <= 1e-6 and finetune["val_loss"] < frozen["val_loss"]


def _refine(model, data: TrainingData, config: Config, run: _Run, verbose: int) -> None:
    """A recipe's last step on the selected model (e.g. refitting the head on data where the
    shortcut does not hold); what it did goes into the card."""
    for name, module in zip(recipes.parts(config.recipe), recipes.modules(config.recipe)):
        if hasattr(module, "refine"):
            run.refinements[name] = module.refine(model, data, config, verbose) or {}


def _predict_val(model, data: TrainingData, n_classes: int, config: Config) -> tuple[np.ndarray, np.ndarray]:
    """``(y, probabilities)`` on the validation images the phases were selected on (with
    the recipe's synthetic ones, as early stopping saw them)."""
    x_val, y_val = data.arrays("val")
    ds = make_dataset(x_val, y_val, n_classes, config.batch_size, training=False, seed=0)
    return y_val, model.predict(ds.map(images_only), verbose=0)


def train(config: Config, data: TrainingData | None = None, verbose: int = 1,
          run_id: str | None = None) -> Path:
    """Run both phases for ``config`` and return the run folder (model + card)."""
    import keras

    from .models.backbones import build_backbone

    t_start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    data = data or load_training_data(config, progress=verbose > 0)
    task, n_classes = data.task, len(data.task.classes)
    run_dir = (config.models_path / result_name(task.name, config.preprocess, config.recipe)
               / (run_id or new_run_id(config)))
    run_dir.mkdir(parents=True, exist_ok=True)

    run = _Run()
    strategy = distribution_strategy()
    with strategy.scope():
        backbone, run.backbone_info = build_backbone(config.backbone, config.image_size, config.weights,
                                                     cache_dir=config.pretrained_path)
        backbone.trainable = False
        model = build_classifier(backbone, n_classes, config.image_size, config.dropout)
    _phase1(model, data, config, run, verbose)
    # Never keep a worse model: the head-only weights stay in memory, and the fine-tuned
    # model replaces them only if it is better on validation (AUC, then loss).
    head_weights = model.get_weights()
    run.phase_selection["frozen"] = validation_scores(task, *_predict_val(model, data, n_classes, config))
    _phase2(model, backbone, strategy, data, config, run_dir, run, verbose)
    if run.histories["finetune"]:
        run.phase_selection["finetune"] = validation_scores(task, *_predict_val(model, data, n_classes, config))
        if finetune_is_better(run.phase_selection["frozen"], run.phase_selection["finetune"]):
            run.kept_phase = "finetune"
        else:
            model.set_weights(head_weights)
            if verbose:
                print("fine-tuning did not beat the head on validation: keeping the head-only model")
    (run_dir / "checkpoint.keras").unlink(missing_ok=True)  # the final model is the best one
    _refine(model, data, config, run, verbose)

    val_ds = make_dataset(data.val.images, data.val.y, n_classes, config.batch_size, training=False, seed=0)
    probs = model.predict(val_ds.map(images_only), verbose=0)
    val_summary = validation_summary(task, data.val.y, probs)
    model.save(run_dir / modelcard.MODEL_NAME)
    history = write_history(run_dir, run.histories["frozen"], run.histories["finetune"])
    run.seconds["total"] = time.perf_counter() - t_start
    card = model_card(config, data, run, run_dir.name, history, val_summary)
    modelcard.write_card(run_dir, card)
    if verbose:
        print(f"saved {run_dir} — val accuracy {val_summary['accuracy']:.4f}, AUC {val_summary['auc']:.4f}, "
              f"{card['training']['timing']['total_seconds']:.0f} s")
    return run_dir


def _timing(run: _Run, n_train: int, n_val: int, finetune_epochs: int) -> dict:
    t_extract, t_phase2 = run.seconds["extract"], run.seconds["phase2"]
    return {
        "total_seconds": round(run.seconds["total"], 1),
        "feature_extraction_seconds": round(t_extract, 1),
        "phase1_seconds": round(run.seconds["phase1"], 1),
        "phase2_seconds": round(t_phase2, 1),
        "feature_extraction_images_per_second": round((n_train + n_val) / max(t_extract, 1e-9), 1),
        "phase2_train_images_per_second": (round(n_train * finetune_epochs / t_phase2, 1)
                                           if t_phase2 else None),
    }


def model_card(config: Config, data: TrainingData, run: _Run, run_id: str, history: pd.DataFrame,
               val_summary: dict) -> dict:
    """The run's ``model_card.json`` (threshold and temperature are filled in by evaluate)."""
    task, y_train = data.task, data.train.y
    epochs_run = {phase: len(run.histories[phase].get("loss", [])) for phase in ("frozen", "finetune")}
    n_synthetic = {name: int(len(data.synthetic[name][1])) if name in data.synthetic else 0
                   for name in ("train", "val")}
    return {
        "schema": modelcard.CARD_SCHEMA,
        "name": f"braintumor-{task.name}",
        "run_id": run_id,
        "task": task.name,
        "task_description": task.description,
        "classes": list(task.classes),
        "output": "sigmoid P(tumor)" if task.binary else "softmax over classes",
        "image_size": config.image_size,
        "input": "RGB uint8 decoded by braintumor.data.images.load_rgb, resized keeping aspect and "
                 "padded with black to a square, fed as float 0-255",
        "preprocess": config.preprocess,
        "recipe": config.recipe,
        "backbone": run.backbone_info,
        "training": {
            "config": config.to_dict(),
            "epochs_run": epochs_run,
            "finetuned_layers": run.finetuned_layers,
            # Which phase's weights were saved: "finetune" only when it beat the head-only
            # model on validation AUC (ties: log loss); scores of each phase beside it.
            "kept_phase": run.kept_phase,
            "phase_selection": {"rule": "validation AUC, ties broken by validation log loss; "
                                        "a tie keeps the head", **run.phase_selection},
            "n_train": int(len(y_train)), "n_val": int(len(data.val.y)),
            "class_counts_train": {c: int((y_train == i).sum()) for i, c in enumerate(task.classes)},
            "synthetic_images": n_synthetic,
            # Real rows a recipe chose (source balancing repeats some, drops others).
            "selected_real_images": {name: int(len(idx)) for name, idx in data.selection.items()},
            "recipe_steps": {"description": recipes.describe(config.recipe), "refine": run.refinements},
            "timing": _timing(run, len(y_train) + n_synthetic["train"], len(data.val.y) + n_synthetic["val"],
                              epochs_run["finetune"]),
            "history_file": modelcard.HISTORY_NAME,
            "best_val_auc_epoch": _best_epoch(history),
        },
        "data": {
            "dataset": DATASET,
            "dataset_fingerprint": dataset_fingerprint(data.train.root),
            "split_manifest": data.train.manifest.path,
            "split_manifest_sha256": data.train.manifest.sha256,
        },
        "validation_metrics": val_summary,
        "decision_threshold": None,  # chosen on validation by `braintumor evaluate`
        "threshold_rule": None,
        "temperature": None,
        "intended_use": modelcard.INTENDED_USE,
        "limitations": LIMITATIONS,
        "versions": provenance.package_versions(),
        "git_commit": provenance.git_commit(config.root_path),
        "created": provenance.now_iso(),
    }


def write_history(run_dir: Path, h1: dict, h2: dict) -> pd.DataFrame:
    parts = []
    for phase, h in (("frozen", h1), ("finetune", h2)):
        if h.get("loss"):
            df = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in h.items()})
            df.insert(0, "phase", phase)
            parts.append(df)
    history = pd.concat(parts, ignore_index=True)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history.to_csv(run_dir / modelcard.HISTORY_NAME, index=False)
    return history


def _best_epoch(history: pd.DataFrame) -> dict | None:
    if "val_auc" not in history or history["val_auc"].isna().all():
        return None
    best = history.loc[history["val_auc"].idxmax()]
    return {"epoch": int(best["epoch"]), "phase": best["phase"], "val_auc": float(best["val_auc"])}


def run_summary(run_dir: str | Path) -> str:
    card = modelcard.read_card(run_dir)
    v, t = card["validation_metrics"], card["training"]["timing"]
    return (f"{card['task']}: val acc {v['accuracy']:.4f}, AUC {v['auc']:.4f}, "
            f"epochs {card['training']['epochs_run']}, {t['total_seconds']} s")
