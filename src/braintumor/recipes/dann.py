"""The ``dann`` recipe: class-conditional domain-adversarial fine-tuning against the source
(Ganin et al., "Domain-adversarial training of neural networks", JMLR 2016; the conditional
form of Li et al., "Deep domain generalization via conditional invariant adversarial
networks", ECCV 2018).

After the usual two phases, the selected model is fine-tuned once more (``EPOCHS`` over the
training rows, the top of the backbone unfrozen as in phase 2) with a second head: an
adversary that reads the pooled features through a gradient-reversal layer and predicts
each real row's source (:mod:`braintumor.recipes._sources`: SARTAJ, figshare, Br35H
tumour-free, acquisition clusters). The adversary learns to tell sources apart; the features
are pushed to make that impossible, while the label loss keeps them predictive.

Why conditional: in the Kaggle data the source nearly determines the class (healthy MRI
come from other collections than tumours), so features made source-invariant outright
would have to forget the class too. The adversary is given the true class as a second input,
so it can only profit from what the features say about the source *beyond* the class, and
that is what the reversal removes (a tumour image should not look like "a figshare image").
The reversal's weight rises from 0 to ``LAMBDA`` over the epoch (Ganin et al.'s schedule).

Synthetic rows of a combined recipe (``nsa+dann``) train the label head but not the
adversary (they have no source of their own). The adversarial model is kept unless its
validation AUC falls more than ``MAX_AUC_DROP`` below the selected model's; that tolerance
was fixed before any run, on the reasoning that giving up a source cue must cost some
in-distribution accuracy (the Kaggle validation split shares the shortcut), but not much.
The model card gets the losses, the adversary's accuracy and whether the step was kept.
"""
from __future__ import annotations

import numpy as np

DESCRIPTION = ("one more fine-tuning epoch with a class-conditional adversary that predicts the "
               "source through gradient reversal (domain-adversarial training)")
BINARY_ONLY = False
DEPENDS = ("recipes/_sources.py", "audit/sources.py", "audit/representations.py", "audit/probes.py")
EPOCHS = 1
LAMBDA = 0.5  # final weight of the reversed source gradient
ADVERSARY_UNITS = 128
MAX_AUC_DROP = 0.01  # validation AUC the adversarial step may cost before it is reverted
SEED_OFFSET = 30  # the adversary's initialisation and the epoch's shuffle (nsa uses +20/+21)


def reversal_weight(progress: float, final: float) -> float:
    """Ganin et al.'s ramp ``final * (2 / (1 + exp(-10 p)) - 1)`` for ``p`` in [0, 1]."""
    return float(final * (2.0 / (1.0 + np.exp(-10.0 * progress)) - 1.0))


def gradient_reversal(x, weight):
    """Identity forward; the gradient times ``-weight`` backward."""
    import tensorflow as tf

    @tf.custom_gradient
    def _reverse(t):
        return tf.identity(t), lambda g: -weight * g

    return _reverse(x)


def refine(model, data, config, verbose: int = 0) -> dict:
    """Adversarial fine-tuning of ``model`` in place (reverted if validation says so)."""
    from ._sources import split_sources

    sources = split_sources(data.train, config).to_numpy()
    if "train" in data.selection:
        sources = sources[data.selection["train"]]
    names, codes = np.unique(sources, return_inverse=True)
    x, y = data.arrays("train")
    domain = np.concatenate([codes, np.full(len(y) - len(codes), -1)])  # -1: synthetic, no source
    note = adversarial_finetune(model, x, y, domain, data.arrays("val"), data.task, config, verbose)
    note["sources"] = {str(n): int((codes == i).sum()) for i, n in enumerate(names)}
    return note


def adversarial_finetune(model, x, y, domain, val, task, config, verbose: int = 0) -> dict:
    """Fine-tune ``model`` on ``(x, y)`` against an adversary predicting ``domain`` (−1 = no
    domain) from its pooled features and the class; kept if validation allows."""
    before = _val_scores(model, val, task, config)
    weights = model.get_weights()
    log = _train(model, x, y, domain, len(task.classes), config, verbose)
    after = _val_scores(model, val, task, config)
    kept = bool(np.isfinite(after["val_auc"]) and after["val_auc"] >= before["val_auc"] - MAX_AUC_DROP)
    if not kept:
        model.set_weights(weights)
    return {
        "method": "class-conditional domain-adversarial fine-tuning (gradient reversal; Ganin et "
                  "al. 2016, Li et al. 2018): the adversary reads pooled features and the class",
        "epochs": EPOCHS, "reversal_weight": LAMBDA, "adversary_units": ADVERSARY_UNITS,
        "criterion": f"kept unless validation AUC falls more than {MAX_AUC_DROP} below the selected model's",
        "val_before": {k: round(v, 6) for k, v in before.items()},
        "val_after": {k: round(v, 6) for k, v in after.items()},
        "kept": kept,
        **log,
    }


def _val_scores(model, val, task, config) -> dict:
    from ..pipeline import make_dataset
    from ..training import images_only, validation_scores

    x_val, y_val = val
    ds = make_dataset(x_val, y_val, len(task.classes), config.batch_size, training=False, seed=0)
    return validation_scores(task, y_val, model.predict(ds.map(images_only), verbose=0))


def _train(model, x, y, domain, n_classes: int, config, verbose: int) -> dict:
    """``EPOCHS`` of label loss + adversary loss (reversed into the features); the log."""
    import keras
    import tensorflow as tf
    from tqdm.auto import tqdm

    from ..data.tasks import class_weights
    from ..models.backbones import unfreeze_top

    unfreeze_top(model, config.finetune_fraction)
    features, head = _parts(model)
    keras.utils.set_random_seed(config.seed + SEED_OFFSET)
    adversary = keras.Sequential([keras.layers.Dense(ADVERSARY_UNITS, activation="relu"),
                                  keras.layers.Dense(max(int(domain.max()) + 1, 2))], name="source_adversary")
    adversary.build((None, features.output.shape[-1] + n_classes))
    ds = _dataset(x, y, domain, config)
    steps = EPOCHS * len(ds)
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(config.lr_finetune, steps, alpha=0.05))
    class_weight = tf.constant([class_weights(y, n_classes)[c] for c in range(n_classes)], tf.float32)
    variables = features.trainable_variables + head.trainable_variables + adversary.trainable_variables

    @tf.function
    def step(images, labels, d, lam):
        onehot = tf.one_hot(labels, n_classes)
        has = tf.cast(d >= 0, tf.float32)  # synthetic rows (-1) train the label head only
        with tf.GradientTape() as tape:
            pooled = features(images, training=True)
            label_loss = _label_loss(onehot, head(pooled, training=True), class_weight, labels)
            d_in = tf.concat([gradient_reversal(pooled, lam), onehot], axis=1)
            d_logits = adversary(d_in, training=True)
            per_row = keras.losses.sparse_categorical_crossentropy(tf.maximum(d, 0), d_logits, from_logits=True)
            d_loss = tf.reduce_sum(has * per_row) / tf.maximum(tf.reduce_sum(has), 1.0)
            total = label_loss + d_loss
        optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
        hits = tf.reduce_sum(has * tf.cast(tf.equal(tf.argmax(d_logits, 1, output_type=tf.int32), d), tf.float32))
        return label_loss, d_loss, hits, tf.reduce_sum(has)

    rows, t = [], 0
    for _ in range(EPOCHS):
        for images, labels, d in tqdm(ds, desc="dann", disable=not verbose, unit="batch"):
            lam = tf.constant(reversal_weight(t / max(steps - 1, 1), LAMBDA), tf.float32)
            rows.append([float(v) for v in step(images, labels, d, lam)])
            t += 1
    return _log(np.array(rows))


def _dataset(x, y, domain, config):
    """Shuffled, augmented batches of ``(images, class, domain)``: phase 2's augmentation."""
    import tensorflow as tf

    from ..pipeline import augmentation_layers

    images_t = tf.convert_to_tensor(np.asarray(x))
    y_t, d_t = tf.constant(np.asarray(y), tf.int32), tf.constant(np.asarray(domain), tf.int32)
    aug = augmentation_layers(config.seed + SEED_OFFSET)

    def gather(idx):
        images = tf.cast(tf.gather(images_t, idx), tf.float32)
        if config.augment:
            images = tf.clip_by_value(aug(images, training=True), 0.0, 255.0)
        return images, tf.gather(y_t, idx), tf.gather(d_t, idx)

    ds = tf.data.Dataset.range(len(y)).shuffle(len(y), seed=config.seed + SEED_OFFSET)
    return ds.batch(config.batch_size).map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _parts(model):
    """``(image → pooled features, pooled features → probabilities)`` sharing ``model``'s layers."""
    import keras

    from ..models.classifier import POOL_LAYER, feature_model

    pooled = model.get_layer(POOL_LAYER).output
    inputs = keras.Input(pooled.shape[1:])
    x = inputs
    for name in ("head_dropout", "logits", "probs"):
        x = model.get_layer(name)(x)
    return feature_model(model), keras.Model(inputs, x)


def _label_loss(onehot, probs, class_weight, labels):
    """Class-weighted cross-entropy, as phase 2's ``class_weight`` weights it."""
    import tensorflow as tf

    p = tf.clip_by_value(tf.cast(probs, tf.float32), 1e-7, 1 - 1e-7)
    if p.shape[-1] == 1:  # binary: one sigmoid unit
        t = onehot[:, 1:]
        per_row = -(t * tf.math.log(p) + (1 - t) * tf.math.log(1 - p))[:, 0]
    else:
        per_row = -tf.reduce_sum(onehot * tf.math.log(p), axis=1)
    w = tf.gather(class_weight, labels)
    return tf.reduce_sum(w * per_row) / tf.reduce_sum(w)


def _log(rows: np.ndarray) -> dict:
    """Losses and the adversary's accuracy over the first and last tenth of the steps."""
    tenth = max(1, len(rows) // 10)

    def summary(part):
        return {"label_loss": round(float(part[:, 0].mean()), 4),
                "source_loss": round(float(part[:, 1].mean()), 4),
                "source_accuracy": round(float(part[:, 2].sum() / max(part[:, 3].sum(), 1)), 4)}

    return {"steps": int(len(rows)), "first_tenth": summary(rows[:tenth]), "last_tenth": summary(rows[-tenth:])}
