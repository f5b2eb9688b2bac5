"""Augmented training batches per second: ours vs ``image_dataset_from_directory``.

Both pipelines deliver the CT training rows of the committed split manifest as shuffled,
augmented ``(batch, 224, 224, 3)`` float batches with the same family of augmentations
(flip, rotation, zoom, translation, contrast, brightness), in the same process,
interleaved run by run:

* ours: :func:`~braintumor.pipeline.cached_arrays` (decode once into a ``.npy`` cache) +
  :func:`~braintumor.pipeline.make_dataset` ``(training=True)``, whose augmentation
  resamples each image once (:class:`braintumor.augment.RandomAffine`). The first epoch is timed
  cold (cache deleted: decoding included) and warm (cache on disk, as in every later run).
* baseline: ``keras.utils.image_dataset_from_directory`` over a folder of symlinks to the
  same files (``pad_to_aspect_ratio=True``, so it resizes the way ours does), then
  ``.cache()`` and the augmentation as the Keras examples write it, one layer per transform
  (:func:`braintumor.augment.keras_augmentation_layers`), mapped with
  ``num_parallel_calls=AUTOTUNE`` and prefetched. Its first epoch decodes and fills the cache.

A first epoch includes building the dataset. "Cached" epochs are the epochs after the
first. Run: ``python -m benchmarks.input_pipeline [--smoke]``.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from benchmarks import common

BINARY_CLASSES = ("healthy", "tumor")


def iterate(ds) -> int:
    """Pull every batch of one epoch; return the number of images delivered."""
    return sum(int(x.shape[0]) for x, _ in ds)


def time_epochs(build, epochs: int) -> tuple[list[float], int]:
    """Seconds for each of ``epochs`` epochs; the first includes ``build()``."""
    t0 = time.perf_counter()
    ds = build()
    times, n = [], 0
    for _ in range(epochs):
        n = iterate(ds)
        t = time.perf_counter()
        times.append(t - t0)
        t0 = t
    return times, n


def ours(root: Path, rows, size: int, batch: int, seed: int, cache_dir: Path, augment: bool = True):
    from braintumor.pipeline import cached_arrays, make_dataset

    images = cached_arrays(root, rows, size, "none", cache_dir, progress=False)
    return make_dataset(images, rows["y"].to_numpy(), len(BINARY_CLASSES), batch, training=True,
                        seed=seed, augment=augment)


def class_folders(root: Path, rows, dest: Path) -> Path:
    """``dest/<class>/<n>_<file name>`` symlinks to the rows' files (names made unique)."""
    links = {f"{BINARY_CLASSES[y]}/{i:05d}_{Path(p).name}": root / p
             for i, (p, y) in enumerate(zip(rows["path"], rows["y"]))}
    return common.symlink_tree(links, dest)


def baseline(folder: Path, size: int, batch: int, seed: int):
    import keras
    import tensorflow as tf

    from braintumor.augment import keras_augmentation_layers

    ds = keras.utils.image_dataset_from_directory(
        folder, class_names=list(BINARY_CLASSES), label_mode="binary", image_size=(size, size),
        batch_size=batch, shuffle=True, seed=seed, pad_to_aspect_ratio=True, verbose=False)
    aug = keras_augmentation_layers(seed)
    return (ds.cache()
            .map(lambda x, y: (aug(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
            .prefetch(tf.data.AUTOTUNE))


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--cached-epochs", type=int, default=1, help="epochs after the first, per run")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--images", type=int, default=None,
                   help="a stratified subset of this many CT training images (default: all 3,230)")
    args = common.parse(p, argv)
    if args.smoke:
        args.image_size, args.batch_size, args.cached_epochs = 64, 4, 1

    from braintumor.data.tasks import stratified_subset

    root = common.dataset_root(args.data_dir)
    rows = common.task_rows("ct", "train")
    if args.smoke:
        rows = stratified_subset(rows, 4, args.seed)
    elif args.images:
        rows = stratified_subset(rows, max(1, args.images // 2), args.seed)
    size, batch, seed, epochs = args.image_size, args.batch_size, args.seed, 1 + args.cached_epochs
    report = common.start("input_pipeline", "Input pipeline: augmented training batches, images/s", args,
                          image_size=size, batch_size=batch, images=len(rows), cached_epochs_per_run=args.cached_epochs,
                          rows="CT train rows of data/splits/default.csv" + (f" (stratified subset)" if args.images else ""), seed=seed)

    times: dict[str, list[float]] = {k: [] for k in (
        "ours_cold_first", "ours_warm_first", "ours_cached", "ours_cached_no_aug",
        "baseline_first", "baseline_cached")}
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        tmp = Path(tmp)
        cache, folder = tmp / "cache", class_folders(root, rows, tmp / "files")
        # Untimed warm-up on a few images: TensorFlow's one-time start-up costs go here.
        few = stratified_subset(rows, batch, seed)
        time_epochs(lambda: ours(root, few, size, batch, seed, tmp / "warmup"), 2)
        time_epochs(lambda: baseline(class_folders(root, few, tmp / "warmup-files"), size, batch, seed), 2)
        for run in range(args.runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold, n_ours = time_epochs(lambda: ours(root, rows, size, batch, seed + run, cache), 1)
            warm, _ = time_epochs(lambda: ours(root, rows, size, batch, seed + run, cache), epochs)
            plain, _ = time_epochs(lambda: ours(root, rows, size, batch, seed + run, cache, augment=False), 2)
            base, n_base = time_epochs(lambda: baseline(folder, size, batch, seed + run), epochs)
            if n_ours != n_base:
                raise RuntimeError(f"pipelines delivered {n_ours} vs {n_base} images per epoch")
            times["ours_cold_first"] += cold
            times["ours_warm_first"].append(warm[0])
            times["ours_cached"] += warm[1:]
            times["ours_cached_no_aug"].append(plain[1])
            times["baseline_first"].append(base[0])
            times["baseline_cached"] += base[1:]
            print(f"run {run + 1}/{args.runs}: " + ", ".join(f"{k} {v[-1]:.1f}s" for k, v in times.items()))

    ips = {k: common.stats(common.rates(len(rows), v)) for k, v in times.items()}
    report.results = {"images_per_second": ips, "epoch_seconds": {k: common.stats(v) for k, v in times.items()}}
    report.ratios = {
        "cached epochs, ours / baseline": common.ratio(ips["ours_cached"], ips["baseline_cached"]),
        "first epoch cold, ours / baseline": common.ratio(ips["ours_cold_first"], ips["baseline_first"]),
        "first epoch warm, ours / baseline": common.ratio(ips["ours_warm_first"], ips["baseline_first"]),
    }
    report.headers = ["pipeline", "epoch", "images/s median (min–max)", "vs baseline"]
    vs = lambda a, b: f"{common.ratio(ips[a], ips[b]):.2f}x"  # noqa: E731
    report.row("ours", "first, cold (decode + write .npy cache)", common.fmt(ips["ours_cold_first"]),
               vs("ours_cold_first", "baseline_first"))
    report.row("ours", "first, warm (.npy cache on disk)", common.fmt(ips["ours_warm_first"]),
               vs("ours_warm_first", "baseline_first"))
    report.row("ours", "cached", common.fmt(ips["ours_cached"]), vs("ours_cached", "baseline_cached"))
    report.row("ours, augmentation off", "cached", common.fmt(ips["ours_cached_no_aug"]), "—")
    report.row("image_dataset_from_directory", "first (decode + fill .cache())", common.fmt(ips["baseline_first"]), "1.00x")
    report.row("image_dataset_from_directory", "cached (.cache())", common.fmt(ips["baseline_cached"]), "1.00x")
    goal = report.ratios["cached epochs, ours / baseline"]
    report.notes += [
        f"{len(rows)} images of {size}x{size} per epoch, batches of {batch}; {args.runs} runs, "
        f"{args.cached_epochs} cached epoch(s) per run; both pipelines in one process, interleaved.",
        "Same transforms in both (ours fused into one resampling); 'augmentation off' shows what delivery costs without augmentation.",
        f"Goal >= 3x the baseline on cached epochs: {'met' if goal >= 3 else 'missed'} ({goal:.2f}x).",
    ]
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
