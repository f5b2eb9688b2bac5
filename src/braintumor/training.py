"""Two-phase transfer learning: a new head on a frozen backbone, then fine-tuning.

Phase 1 trains only the head. With the backbone frozen (and its BatchNorm in inference
mode) the pooled features of an image never change, so they are extracted once and the
head trains on them in seconds instead of running the backbone every epoch. Phase 2
unfreezes the top of the backbone, keeps BatchNorm in inference mode, and fine-tunes the
whole model end to end on augmented images at a lower, decaying learning rate (as in the
Keras transfer-learning guide). Early stopping and checkpointing watch validation AUC.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import modelcard
from .config import Config, result_name
from .data import locate_dataset
from .index import dataset_fingerprint
from .pipeline import cached_arrays, make_dataset
from .splits import read_manifest
from .tasks import Task, class_weights, get_task, stratified_subset


@dataclass
class TrainingData:
    """The arrays one run trains and validates on."""

    task: Task
    train_rows: pd.DataFrame
    val_rows: pd.DataFrame
    x_train: np.ndarray
    x_val: np.ndarray
    root: Path
    manifest_sha256: str


def load_training_data(config: Config, progress: bool = True) -> TrainingData:
    """Select the task's train/val rows from the committed manifest and decode them."""
    task = get_task(config.task)
    root = locate_dataset(config=config)
    manifest = read_manifest(config.manifest_path)
    train_rows, val_rows = task.rows(manifest, "train"), task.rows(manifest, "val")
    if config.quick:
        train_rows = stratified_subset(train_rows, config.quick_per_class, config.seed)
        val_rows = stratified_subset(val_rows, max(10, config.quick_per_class // 3), config.seed)
    x_train = cached_arrays(root, train_rows, config.image_size, config.preprocess, config.cache_path, progress)
    x_val = cached_arrays(root, val_rows, config.image_size, config.preprocess, config.cache_path, progress)
    return TrainingData(task, train_rows, val_rows, x_train, x_val, root,
                        manifest.attrs.get("manifest_sha256", ""))


def distribution_strategy():
    """Mixed precision on GPUs; MirroredStrategy across several; the default on CPU."""
    import keras
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        keras.mixed_precision.set_global_policy("mixed_float16")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def build_classifier(backbone, n_classes: int, image_size: int, dropout: float):
    """0–255 RGB in → class probabilities out; the logits layer is named ``logits``.

    The backbone is called with ``training=False`` so its BatchNorm layers stay in
    inference mode even when unfrozen: fine-tuning on small batches would otherwise
    wreck the ImageNet statistics.
    """
    import keras

    inputs = keras.Input((image_size, image_size, 3), name="image")
    features = backbone(inputs, training=False)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(dropout, name="head_dropout")(pooled)
    units = 1 if n_classes == 2 else n_classes
    logits = keras.layers.Dense(units, name="logits", dtype="float32")(x)
    probs = keras.layers.Activation("sigmoid" if n_classes == 2 else "softmax",
                                    name="probs", dtype="float32")(logits)
    return keras.Model(inputs, probs, name="braintumor_classifier")


def _loss_and_metrics(n_classes: int):
    import keras

    if n_classes == 2:
        return keras.losses.BinaryCrossentropy(), [
            keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    return keras.losses.CategoricalCrossentropy(), [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.AUC(name="auc", multi_label=True, num_labels=n_classes)]  # macro OvR


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


def extract_features(model, images: np.ndarray, batch_size: int, verbose: int = 0) -> np.ndarray:
    """Pooled backbone features of ``images`` through a built classifier."""
    import keras

    pool = keras.Model(model.input, model.get_layer("pool").output)
    ds = make_dataset(images, np.zeros(len(images), int), 2, batch_size, training=False, seed=0)
    return pool.predict(ds.map(images_only), verbose=verbose)


def train_head_on_features(model, f_train, y_train, f_val, y_val, n_classes: int, config: Config,
                           verbose: int):
    """Phase 1: fit a copy of the head (dropout + dense) on cached pooled features,
    then copy its weights into the classifier."""
    import keras

    inputs = keras.Input((f_train.shape[1],))
    x = keras.layers.Dropout(config.dropout)(inputs)
    dense = keras.layers.Dense(1 if n_classes == 2 else n_classes, dtype="float32")
    out = keras.layers.Activation("sigmoid" if n_classes == 2 else "softmax")(dense(x))
    head = keras.Model(inputs, out)
    loss, metrics = _loss_and_metrics(n_classes)
    head.compile(optimizer=keras.optimizers.Adam(config.lr_frozen), loss=loss, metrics=metrics)
    t_train = y_train[:, None].astype("float32") if n_classes == 2 else np.eye(n_classes)[y_train]
    t_val = y_val[:, None].astype("float32") if n_classes == 2 else np.eye(n_classes)[y_val]
    hist = head.fit(f_train, t_train, validation_data=(f_val, t_val), epochs=config.epochs_frozen,
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
    tag = f"-{config.preprocess}" if config.preprocess != "none" else ""
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


def train(config: Config, data: TrainingData | None = None, verbose: int = 1) -> Path:
    """Run both phases for ``config`` and return the run folder (model + card)."""
    import keras

    from .backbones import build_backbone, unfreeze_top

    t_start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    data = data or load_training_data(config, progress=verbose > 0)
    task, n_classes = data.task, len(data.task.classes)
    y_train, y_val = data.train_rows["y"].to_numpy(), data.val_rows["y"].to_numpy()
    run_dir = config.models_path / result_name(task.name, config.preprocess) / new_run_id(config)
    run_dir.mkdir(parents=True, exist_ok=True)

    strategy = distribution_strategy()
    with strategy.scope():
        backbone, backbone_info = build_backbone(config.backbone, config.image_size, config.weights,
                                                 cache_dir=config.pretrained_path)
        backbone.trainable = False
        model = build_classifier(backbone, n_classes, config.image_size, config.dropout)

    # Phase 1: head on cached features.
    t0 = time.perf_counter()
    f_train = extract_features(model, data.x_train, config.batch_size, verbose)
    f_val = extract_features(model, data.x_val, config.batch_size, verbose)
    t_extract = time.perf_counter() - t0
    h1 = train_head_on_features(model, f_train, y_train, f_val, y_val, n_classes, config, verbose)
    t_phase1 = time.perf_counter() - t0

    # Phase 2: fine-tune the top of the backbone end to end on augmented images.
    h2: dict = {}
    t_phase2 = 0.0
    n_unfrozen = 0
    if config.epochs_finetune > 0 and config.finetune_fraction > 0:
        with strategy.scope():
            n_unfrozen = unfreeze_top(backbone, config.finetune_fraction)
            steps = config.epochs_finetune * int(np.ceil(len(y_train) / config.batch_size))
            schedule = keras.optimizers.schedules.CosineDecay(config.lr_finetune, steps, alpha=0.05)
            loss, metrics = _loss_and_metrics(n_classes)
            model.compile(optimizer=keras.optimizers.Adam(schedule), loss=loss, metrics=metrics)
        train_ds = make_dataset(data.x_train, y_train, n_classes, config.batch_size, training=True,
                                seed=config.seed, augment=config.augment)
        val_ds = make_dataset(data.x_val, y_val, n_classes, config.batch_size, training=False,
                              seed=config.seed)
        t0 = time.perf_counter()
        hist = model.fit(train_ds, validation_data=val_ds, epochs=config.epochs_finetune, shuffle=False,
                         class_weight=class_weights(y_train, n_classes),
                         callbacks=_callbacks(run_dir, patience=3), verbose=verbose)
        t_phase2 = time.perf_counter() - t0
        h2 = hist.history
    (run_dir / "checkpoint.keras").unlink(missing_ok=True)  # the final model is the best one

    val_ds = make_dataset(data.x_val, y_val, n_classes, config.batch_size, training=False, seed=0)
    probs = model.predict(val_ds.map(images_only), verbose=0)
    val_summary = validation_summary(task, y_val, probs)
    model.save(run_dir / modelcard.MODEL_NAME)
    history = write_history(run_dir, h1, h2)

    epochs_run = {"frozen": len(h1.get("loss", [])), "finetune": len(h2.get("loss", []))}
    timing = {
        "total_seconds": round(time.perf_counter() - t_start, 1),
        "feature_extraction_seconds": round(t_extract, 1),
        "phase1_seconds": round(t_phase1, 1),
        "phase2_seconds": round(t_phase2, 1),
        "feature_extraction_images_per_second": round((len(y_train) + len(y_val)) / max(t_extract, 1e-9), 1),
        "phase2_train_images_per_second": (round(len(y_train) * epochs_run["finetune"] / t_phase2, 1)
                                           if t_phase2 else None),
    }
    card = {
        "schema": modelcard.CARD_SCHEMA,
        "name": f"braintumor-{task.name}",
        "run_id": run_dir.name,
        "task": task.name,
        "task_description": task.description,
        "classes": list(task.classes),
        "output": "sigmoid P(tumor)" if task.binary else "softmax over classes",
        "image_size": config.image_size,
        "input": "RGB uint8 decoded by braintumor.images.load_rgb, resized keeping aspect and "
                 "padded with black to a square, fed as float 0-255",
        "preprocess": config.preprocess,
        "backbone": backbone_info,
        "training": {
            "config": config.to_dict(),
            "epochs_run": epochs_run,
            "finetuned_layers": n_unfrozen,
            "n_train": int(len(y_train)), "n_val": int(len(y_val)),
            "class_counts_train": {c: int((y_train == i).sum()) for i, c in enumerate(task.classes)},
            "timing": timing,
            "history_file": "history.csv",
            "best_val_auc_epoch": _best_epoch(history),
        },
        "data": {
            "dataset": "Kaggle murtozalikhon/brain-tumor-multimodal-image-ct-and-mri (CC BY-NC-SA 4.0)",
            "dataset_fingerprint": dataset_fingerprint(data.root),
            "split_manifest": str(config.manifest_path.relative_to(config.root_path))
            if config.manifest_path.is_relative_to(config.root_path) else str(config.manifest_path),
            "split_manifest_sha256": data.manifest_sha256,
        },
        "validation_metrics": val_summary,
        "decision_threshold": None,  # chosen on validation by `braintumor evaluate`
        "threshold_rule": None,
        "temperature": None,
        "intended_use": modelcard.INTENDED_USE,
        "limitations": [
            "Healthy and tumour images come from different source collections; accuracy partly "
            "reflects source style, not pathology (see reports/audit).",
            "2-D slices without patient IDs: the split is by duplicate group, not by patient.",
        ],
        "versions": modelcard.package_versions(),
        "git_commit": modelcard.git_commit(config.root_path),
        "created": modelcard.now_iso(),
    }
    modelcard.write_card(run_dir, card)
    if verbose:
        print(f"saved {run_dir} — val accuracy {val_summary['accuracy']:.4f}, AUC {val_summary['auc']:.4f}, "
              f"{timing['total_seconds']:.0f} s")
    return run_dir


def write_history(run_dir: Path, h1: dict, h2: dict) -> pd.DataFrame:
    parts = []
    for phase, h in (("frozen", h1), ("finetune", h2)):
        if h.get("loss"):
            df = pd.DataFrame({k: np.asarray(v, dtype=float) for k, v in h.items()})
            df.insert(0, "phase", phase)
            parts.append(df)
    history = pd.concat(parts, ignore_index=True)
    history.insert(0, "epoch", np.arange(1, len(history) + 1))
    history.to_csv(run_dir / "history.csv", index=False)
    return history


def _best_epoch(history: pd.DataFrame) -> dict | None:
    if "val_auc" not in history or history["val_auc"].isna().all():
        return None
    best = history.loc[history["val_auc"].idxmax()]
    return {"epoch": int(best["epoch"]), "phase": best["phase"], "val_auc": float(best["val_auc"])}


def run_summary(run_dir: str | Path) -> str:
    card = json.loads((Path(run_dir) / modelcard.CARD_NAME).read_text())
    v, t = card["validation_metrics"], card["training"]["timing"]
    return (f"{card['task']}: val acc {v['accuracy']:.4f}, AUC {v['auc']:.4f}, "
            f"epochs {card['training']['epochs_run']}, {t['total_seconds']} s")
