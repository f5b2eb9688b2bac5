"""Training images/s per backbone: phase 1 (frozen) and phase 2 (fine-tuning), with peak memory.

For each backbone, in a fresh process (so its peak memory is its own), on CT training
images decoded beforehand:

* phase 1 is what :func:`braintumor.training.train` does with a frozen backbone: one
  forward pass to the pooled features (``predict`` on the classifier's ``pool`` layer, as
  :func:`~braintumor.training.extract_features`); the head then trains on those features
  in seconds, which is not timed here.
* phase 2 is ``model.fit`` with the top 40% of the backbone unfrozen and BatchNorm kept
  frozen (:func:`braintumor.models.backbones.unfreeze_top`), augmentation on, class weights, Adam.

To keep it affordable each run is a fixed number of batches (default 20 batches of 32,
after 2 untimed warm-up batches that also trace the functions), not a full epoch. Phase 2
runs them in ONE ``fit`` call and times the steady state from batch-end timestamps, as a
real epoch of ~100 batches sees it: an earlier version timed a separate ``fit`` call of 5
batches, so each call's start-up (a new dataset iterator, shuffle, prefetch and class-weight
map, the first batch ~2.4 s here) was spread over only 160 images and the benchmark
reported ~20 images/s where training cards recorded more. The start-up is still reported
(``phase2_startup_seconds``), apart from the rate.

Variants of phase 2 for the first backbone (``--variants``): ``fp32`` (today's training),
``bf16`` (``keras.mixed_precision`` policy ``mixed_bfloat16``; this CPU has AVX512_BF16),
``top20`` (the top 20% of backbone layers unfrozen instead of 40%), ``res160`` (fine-tuning
at 160 px instead of 224: the network is fully convolutional with global pooling, so the same
weights run at either size), ``top20-res160`` (both), and the activation caches: ``cache``
computes the frozen part of the network once per augmented view (below the last block output
under the first unfrozen layer; BatchNorm is frozen, so that part is a fixed function of the
image), one view per fine-tuning epoch as today's fresh augmentation gives, and fits only the
layers above the cut on the cached activations; ``cache-1view`` reuses one view in every epoch;
``top20-cache`` caches below the top 20%. Their phase-2 time is what a whole fine-tuning costs
per image-epoch: cache building x views / epochs, plus the top's fit. ImageNet
weights are used where this machine has the file, random weights otherwise (the table says
which); speed does not depend on the weight values. Peak memory is the process's peak
resident set size after phase 1 and after phase 2.
Run: ``python -m benchmarks.training [--smoke] [--backbones a,b,...]``.
"""
from __future__ import annotations

import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks import common

BACKBONES = ("efficientnet_lite0", "mobilenet_025", "mobilenet_v2", "efficientnetb0")
# name -> (Keras dtype policy or None, share of backbone layers unfrozen or None, fine-tuning
# image size as a share of --image-size or None, cached augmented views per image or None:
# "epochs" = one per fine-tuning epoch, so each epoch still sees a fresh view as today)
VARIANTS = {"fp32": (None, None, None, None), "bf16": ("mixed_bfloat16", None, None, None),
            "top20": (None, 0.2, None, None), "res160": (None, None, 160 / 224, None),
            "top20-res160": (None, 0.2, 160 / 224, None), "cache": (None, None, None, "epochs"),
            "cache-1view": (None, None, None, 1), "top20-cache": (None, 0.2, None, "epochs")}


def seed_keras_home(home: Path) -> Path:
    """A ``KERAS_HOME`` with the weight files this machine has: Keras' own cache plus the
    shared MobileNet file (what ``make seed-weights`` copies)."""
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    user = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"
    for source in (user, common.SHARED_WEIGHTS):
        for f in sorted(source.glob("*.h5")) if source.is_dir() else []:
            if not (models / f.name).exists():
                shutil.copy2(f, models / f.name)
    return home


def measure(name: str, weights: str | None, images: str, labels: str, batch: int, warmup: int,
            steps: int, runs: int, fraction: float, seed: int, pretrained_dir: str,
            policy: str | None = None, finetune_size: int | None = None,
            cache_views: int | str | None = None, epochs: int = 2) -> dict:
    """Phase 1 and phase 2 timings for one backbone (runs in its own process)."""
    import keras
    import numpy as np

    if policy:
        keras.mixed_precision.set_global_policy(policy)

    from braintumor.models.backbones import build_backbone, unfreeze_top
    from braintumor.pipeline import make_dataset
    from braintumor.data.tasks import class_weights
    from braintumor.models.classifier import build_classifier

    x, y = np.load(images, mmap_mode="r"), np.load(labels)
    size = x.shape[1]
    keras.utils.set_random_seed(seed)
    backbone, info = build_backbone(name, size, weights, cache_dir=pretrained_dir)
    backbone.trainable = False
    model = build_classifier(backbone, 2, size, dropout=0.2)

    # Phase 1: frozen forward pass to pooled features.
    pool = keras.Model(model.input, model.get_layer("pool").output)
    features = lambda n: make_dataset(x[:n], y[:n], 2, batch, training=False, seed=0).map(lambda a, _: a)  # noqa: E731
    pool.predict(features(warmup * batch), verbose=0)
    timed_input = features(steps * batch)
    phase1 = [common.timed(pool.predict, timed_input, verbose=0)[0] for _ in range(runs)]
    rss1 = common.peak_rss_mb()
    info_row = {"backbone": name, "weights": weights, "weight_source": info.get("weight_source"),
                "image_size": size, "finetune_image_size": finetune_size or size,
                "policy": policy or "float32", "finetune_fraction": fraction, "phase1_seconds": phase1}

    # Phase 2: fine-tune the top of the backbone end to end on augmented batches (at a
    # smaller size for the resolution variants: the same weights on a model built for it).
    if finetune_size and finetune_size != size:
        import tensorflow as tf

        x = np.asarray(tf.cast(tf.round(tf.image.resize(x, (finetune_size, finetune_size), antialias=True)),
                               tf.uint8))
        backbone, _ = build_backbone(name, finetune_size, weights, cache_dir=pretrained_dir)
        model = build_classifier(backbone, 2, finetune_size, dropout=0.2)
    unfrozen = unfreeze_top(backbone, fraction)
    row = info_row | {"finetuned_layers": unfrozen, "peak_rss_mb_phase1": rss1}
    if cache_views:
        return row | cached_phase2(model, backbone, x, y, batch, warmup, steps, runs, seed,
                                   epochs if cache_views == "epochs" else cache_views, epochs)
    train = make_dataset(x, y, 2, batch, training=True, seed=seed).repeat()
    phase2, startup = timed_fit(model, train, class_weights(y, 2), warmup, steps, runs)
    return row | {"phase2_seconds": phase2, "phase2_startup_seconds": startup,
                  "peak_rss_mb_phase2": common.peak_rss_mb()}


def timed_fit(model, train, class_weight: dict, warmup: int, steps: int, runs: int):
    """Compile ``model`` as phase 2 does and time ``steps`` batches of ``train`` after
    ``warmup`` ones, in one ``fit`` call per run: ``(seconds per run, start-up per run)``."""
    import time

    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")])

    class BatchEnds(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.ends = time.perf_counter(), []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    seconds, startup = [], []
    for _ in range(runs):
        clock = BatchEnds()
        model.fit(train, epochs=1, steps_per_epoch=warmup + steps, class_weight=class_weight,
                  shuffle=False, verbose=0, callbacks=[clock])  # the dataset shuffles itself
        seconds.append(clock.ends[-1] - clock.ends[warmup - 1])
        startup.append(clock.ends[0] - clock.start)
    return seconds, startup


def split_at_frozen(model, backbone):
    """The classifier cut below its first trainable layer: ``(bottom, top, cut layer name)``.

    ``bottom`` maps images to the activation at the cut (all frozen, BatchNorm in inference
    mode, so it is a fixed function of the image); ``top`` maps that activation to class
    probabilities with the very layer objects of ``model``, so fitting ``top`` fits ``model``.
    The cut is the last layer whose output is the only tensor crossing it (a block output:
    a residual connection must not jump over the cut).
    """
    import keras

    from braintumor.models.backbones import get_backbone

    base = get_backbone(backbone)
    layers = base.layers
    first = next(i for i, layer in enumerate(layers) if layer.trainable and layer.weights)
    made = {id(layer.output): i for i, layer in enumerate(layers)}
    used = [{id(t) for node in layer._inbound_nodes for t in node.arguments.keras_tensors} for layer in layers]

    def crossing(i):  # tensors made at or below layer i and used above it
        return {t for inputs in used[i + 1:] for t in inputs if made.get(t, len(layers)) <= i}

    cut = next(i for i in range(first - 1, 0, -1) if crossing(i) == {id(layers[i].output)})
    image = keras.Input(model.input.shape[1:])
    x = image
    for layer in backbone.layers[1:-1]:  # the input preprocessing ahead of the network
        x = layer(x)
    bottom = keras.Model(image, keras.Model(base.input, layers[cut].output)(x, training=False))
    act = keras.Input(bottom.output.shape[1:])
    x = keras.Model(layers[cut].output, base.output)(act, training=False)
    for name in ("pool", "head_dropout", "logits", "probs"):
        x = model.get_layer(name)(x)
    return bottom, keras.Model(act, x), layers[cut].name


def cached_phase2(model, backbone, x, y, batch: int, warmup: int, steps: int, runs: int, seed: int,
                  views: int, epochs: int) -> dict:
    """Phase 2 with the frozen part's activations cached per augmented view.

    Two timings per run: building the cache (augment a batch, run the frozen bottom, keep its
    activation) and fitting only the top on cached activations. Over a fine-tuning of
    ``epochs`` epochs with ``views`` views cached per image, each image costs
    ``views / epochs`` cache builds and one top step per epoch, which is the phase-2 time
    reported. ``views == epochs`` gives every epoch a fresh augmented view, as today.
    """
    import time

    import numpy as np
    import tensorflow as tf

    from braintumor.data.tasks import class_weights
    from braintumor.pipeline import make_dataset

    bottom, top, cut = split_at_frozen(model, backbone)
    forward = tf.function(lambda a: bottom(a, training=False))
    build, fit, startup = [], [], []
    for run in range(runs):
        chunks, targets, t0 = [], [], time.perf_counter()
        for i, (xb, yb) in enumerate(make_dataset(x, y, 2, batch, training=True, seed=seed + run)):
            if i == warmup:  # the first batches trace the function: not timed
                t0 = time.perf_counter()
            chunks.append(forward(xb).numpy())
            targets.append(yb.numpy())
        build.append((time.perf_counter() - t0) * steps / (len(chunks) - warmup))
        acts, targets = np.concatenate(chunks), np.concatenate(targets)
        train = (tf.data.Dataset.from_tensor_slices((acts, targets)).shuffle(len(acts), seed=seed)
                 .batch(batch).repeat().prefetch(tf.data.AUTOTUNE))
        seconds, start = timed_fit(top, train, class_weights(y, 2), warmup, steps, 1)
        fit += seconds
        startup += start
    return {"phase2_seconds": [b * views / epochs + f for b, f in zip(build, fit)],
            "cache_build_seconds": build, "cached_top_seconds": fit, "phase2_startup_seconds": startup,
            "cache_views": views, "finetune_epochs": epochs, "cut_layer": cut,
            "cache_bytes_per_view": int(acts[0].nbytes), "peak_rss_mb_phase2": common.peak_rss_mb()}


def in_own_process(fn, **kwargs):
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fn, **kwargs).result()


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--backbones", default=",".join(BACKBONES), help="comma-separated registry names")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=20, help="timed batches per run")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches first")
    p.add_argument("--finetune-fraction", type=float, default=0.4)
    p.add_argument("--finetune-epochs", type=int, default=2,
                   help="fine-tuning epochs the cache variants spread their cache over (the study schedule: 2)")
    p.add_argument("--random-weights", action="store_true", help="random weights for every backbone")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help=f"phase-2 variants for the first backbone, of {', '.join(VARIANTS)}")
    args = common.parse(p, argv)
    if args.smoke:
        args.backbones, args.image_size, args.batch_size = "mobilenet_025", 64, 4
        args.steps, args.warmup, args.random_weights = 2, 1, True
    names = [b.strip() for b in args.backbones.split(",") if b.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] or ["fp32"]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.warmup < 1:
        p.error("--warmup must be at least 1 (the timed batches start after it)")
    jobs = [(name, v) for i, name in enumerate(names) for v in (variants if i == 0 else ["fp32"])]

    import numpy as np

    from braintumor.models.backbones import weights_available_offline
    from braintumor.config import Config
    from braintumor.pipeline import cached_arrays
    from braintumor.data.tasks import stratified_subset

    batch, n = args.batch_size, (args.warmup + args.steps) * args.batch_size
    report = common.start("training", "Training: images/s per backbone, phase 1 (frozen) and phase 2 (fine-tune)",
                          args, image_size=args.image_size, batch_size=batch, timed_steps=args.steps,
                          warmup_steps=args.warmup, finetune_fraction=args.finetune_fraction,
                          backbones=names, variants=variants)
    root = common.dataset_root(args.data_dir)
    rows = stratified_subset(common.task_rows("ct", "train"), math.ceil(n / 2), args.seed).iloc[:n]
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "images.npy", cached_arrays(root, rows, args.image_size, "none", None, progress=False))
        np.save(tmp / "labels.npy", rows["y"].to_numpy())
        with common.environ(KERAS_HOME=str(seed_keras_home(tmp / "keras"))):
            for name, variant in jobs:
                policy, fraction, scale, views = VARIANTS[variant]
                if args.random_weights:
                    weights, label = None, "random (requested)"
                elif weights_available_offline(name):
                    weights, label = "imagenet", "ImageNet"
                else:
                    weights, label = None, "random (no ImageNet file on this machine)"
                print(f"{name} ({variant}): {label} weights ...", flush=True)
                results.append({"weights_label": label, "variant": variant} | in_own_process(
                    measure, name=name, weights=weights, images=str(tmp / "images.npy"),
                    labels=str(tmp / "labels.npy"), batch=batch, warmup=args.warmup, steps=args.steps,
                    runs=args.runs, fraction=fraction or args.finetune_fraction, seed=args.seed,
                    pretrained_dir=str(Config().pretrained_path), policy=policy,
                    finetune_size=round(scale * args.image_size) if scale else None,
                    cache_views=views, epochs=args.finetune_epochs))

    timed_images = args.steps * batch
    report.headers = ["backbone", "variant", "weights", "phase 1 images/s (frozen)",
                      "phase 2 images/s (fine-tune)", "phase 2 vs fp32", "fit start-up s",
                      "peak RSS MB (phase 1 / 1+2)", "fine-tuned layers"]
    baseline = {}
    for r in results:
        r["phase1_images_per_second"] = common.stats(common.rates(timed_images, r["phase1_seconds"]))
        r["phase2_images_per_second"] = common.stats(common.rates(timed_images, r["phase2_seconds"]))
        if r["variant"] == "fp32":
            baseline[r["backbone"]] = r["phase2_images_per_second"]
    for r in results:
        base = baseline.get(r["backbone"])
        report.row(r["backbone"], r["variant"], r["weights_label"],
                   common.fmt(r["phase1_images_per_second"]), common.fmt(r["phase2_images_per_second"]),
                   f"{common.ratio(r['phase2_images_per_second'], base):.2f}x" if base else "—",
                   f"{common.stats(r['phase2_startup_seconds'])['median']:.1f}",
                   f"{r['peak_rss_mb_phase1']:.0f} / {r['peak_rss_mb_phase2']:.0f}", r["finetuned_layers"])
        if r["variant"] != "fp32" and base:
            report.ratios[f"{r['backbone']} {r['variant']} / fp32 phase 2"] = common.ratio(
                r["phase2_images_per_second"], base)
    for r in results:
        if "cache_views" in r:
            per_view = common.stats(common.rates(timed_images, r["cache_build_seconds"]))
            top = common.stats(common.rates(timed_images, r["cached_top_seconds"]))
            r |= {"cache_build_images_per_second": per_view, "cached_top_images_per_second": top}
            report.notes.append(
                f"{r['backbone']} {r['variant']}: cut after {r['cut_layer']}; cache built at "
                f"{common.fmt(per_view)} images/s, top fitted at {common.fmt(top)} images/s; "
                f"{r['cache_views']} view(s) for {r['finetune_epochs']} epochs; "
                f"{r['cache_bytes_per_view'] / 2**20:.3f} MiB per image and view (float32).")
    report.results = {"backbones": results}
    report.notes += [
        f"Each run: {args.steps} batches of {batch} at {args.image_size}x{args.image_size} after "
        f"{args.warmup} warm-up batches (not a full epoch), in one fit call per run, timed from batch-end "
        f"timestamps (steady state; the call's start-up to its first batch is the 'fit start-up' column); "
        f"{args.runs} runs; each backbone and variant in a fresh process.",
        "Variants: fp32 = today's training; bf16 = mixed_bfloat16 policy; top20 = top 20% of backbone "
        "layers unfrozen instead of 40%; res160 = fine-tuning at 160 px (the same ImageNet weights, "
        "images resized); top20-res160 = both; cache = the frozen part's activations cached per augmented "
        f"view, one view per fine-tuning epoch ({args.finetune_epochs}), then only the layers above the cut "
        "trained on them (phase 2 time = cache build x views / epochs + top fit); cache-1view = one view "
        "reused in every epoch (less augmentation); top20-cache = top 20% unfrozen, cached. "
        "Speed only: whether a variant keeps validation AUC needs a training run.",
        "Phase 1 = frozen backbone forward pass to pooled features (as training.py extracts them once); "
        f"phase 2 = model.fit with the top {args.finetune_fraction:.0%} of backbone layers unfrozen, "
        "BatchNorm frozen, augmentation on.",
    ]
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
