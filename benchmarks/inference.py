"""Inference on image files through ``Predictor.predict_paths`` vs ``model.predict`` on arrays.

Ours is what ``braintumor predict`` runs: read, decode, preprocess, resize and pad each file
in worker processes while the network runs on the previous chunk, then calibrated
probabilities, decisions and the out-of-distribution columns into a table. The floor is
the same loaded Keras model's ``predict`` on arrays decoded beforehand, so the ratio is the
cost of decoding, preprocessing, batching and bookkeeping that is not hidden behind the
network. Rows for raw images (``preprocess none``) and for ``crop-mask`` (the slow
shortcut-removing preprocessing; the same model with its card's preprocessing switched,
speed does not depend on what the weights learnt), with every core decoding and with one. Single-image latency is
measured one file per call (p50 / p95 over many calls, ours and floor interleaved); batch
throughput over a few hundred test images per run. Image files are in the OS page cache.

With ``--model models/<task>[/<run>]`` a trained model is used; otherwise (and with
``--smoke``) a throwaway run folder with a randomly initialised classifier of the same
architecture (speed does not depend on weight values).
The report also gives this machine's bound for crop-mask from files: the network's core-time
per image (from the floor) plus decoding and crop-mask, on every core, nothing lost.
Decoding processes run ``BRAINTUMOR_DECODE_NICENESS`` (default 0) below the network;
set it (e.g. 10) to compare.
Run: ``python -m benchmarks.inference [--smoke] [--model models/ct]``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import common


def throwaway_run(dest: Path, backbone: str, size: int) -> Path:
    """A run folder with a random-weight classifier and the minimal model card predict needs."""
    from braintumor.models import modelcard
    from braintumor.models.backbones import build_backbone
    from braintumor.models.classifier import build_classifier

    features, info = build_backbone(backbone, size, weights=None)
    run = dest / "ct" / f"benchmark-{backbone}-random"
    run.mkdir(parents=True)
    build_classifier(features, 2, size, dropout=0.2).save(run / modelcard.MODEL_NAME)
    modelcard.write_card(run, {
        "schema": modelcard.CARD_SCHEMA, "task": "ct", "run_id": run.name,
        "classes": ["healthy", "tumor"], "image_size": size, "preprocess": "none", "backbone": info,
        "intended_use": "benchmark only: random weights, predictions are meaningless",
    })
    return run


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0])
    p.add_argument("--model", help="run or task folder (default: a throwaway random-weight model)")
    p.add_argument("--backbone", default="efficientnet_lite0", help="backbone of the throwaway model")
    p.add_argument("--image-size", type=int, default=224, help="image size of the throwaway model")
    p.add_argument("--images", type=int, default=256, help="test images per batch-throughput run")
    p.add_argument("--single", type=int, default=100, help="single-image calls for the latency percentiles")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-images", type=int, default=192, help="test images per crop-mask run")
    p.add_argument("--crop-runs", type=int, default=3, help="crop-mask runs (all cores); one with one core")
    args = common.parse(p, argv)
    if args.smoke:
        args.model, args.backbone, args.image_size = None, "mobilenet_025", 64
        args.images, args.single, args.batch_size = 8, 4, 4
        args.crop_images, args.crop_runs = 12, 1

    import numpy as np

    from braintumor.inference import resolve_run
    from braintumor.preprocess import load_prepared
    from braintumor.inference import Predictor
    from braintumor.data.tasks import stratified_subset

    root = common.dataset_root(args.data_dir)
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        run = resolve_run(args.model) if args.model else throwaway_run(Path(tmp), args.backbone, args.image_size)
        from braintumor.predict_files import WORKER_NICENESS

        report = common.start("inference", "Inference: Predictor.predict_paths vs model.predict on arrays",
                              args, model=str(run), batch_size=args.batch_size,
                              decode_niceness=WORKER_NICENESS)
        load_seconds, predictor = common.timed(Predictor.load, run)
        card, model, batch = predictor.card, predictor.model, args.batch_size
        size = int(card["image_size"])
        rows = stratified_subset(common.task_rows(card["task"], "test"), -(-args.images // 2), args.seed)
        paths = [root / p for p in rows["path"]][: args.images]
        arrays = np.stack([load_prepared(p, size, card["preprocess"]) for p in paths]).astype(np.float32)

        ours = lambda ps: predictor.predict_paths(ps, batch_size=batch, progress=False)  # noqa: E731
        floor = lambda xs: model.predict(xs, batch_size=batch, verbose=0)  # noqa: E731
        for warm in (paths[:1], paths[:batch]):  # untimed: traces the predict functions
            ours(warm)
        for warm in (arrays[:1], arrays[:batch]):
            floor(warm)

        direct = lambda xs: model(xs, training=False)  # noqa: E731 - no predict() set-up per call
        direct(arrays[:1])
        single_ours, single_floor, single_direct = [], [], []
        for i in range(args.single):
            j = i % len(paths)
            single_ours.append(common.timed(ours, paths[j : j + 1])[0])
            single_floor.append(common.timed(floor, arrays[j : j + 1])[0])
            single_direct.append(common.timed(direct, arrays[j : j + 1])[0])
        batch_ours, batch_floor = [], []
        for run_i in range(args.runs):
            batch_ours.append(common.timed(ours, paths)[0])
            batch_floor.append(common.timed(floor, arrays)[0])
            print(f"run {run_i + 1}/{args.runs}: predict_paths {batch_ours[-1]:.2f}s, "
                  f"model.predict {batch_floor[-1]:.2f}s for {len(paths)} images")

        # crop-mask: the same model, its card's preprocessing switched
        import dataclasses
        import os

        cropper = dataclasses.replace(predictor, card={**card, "preprocess": "crop-mask"})
        crop_paths = paths[: args.crop_images] if len(paths) >= args.crop_images else (
            [root / p for p in stratified_subset(common.task_rows(card["task"], "test"),
                                                 -(-args.crop_images // 2), args.seed)["path"]][: args.crop_images])
        crop_arrays = np.stack([load_prepared(p, size, "crop-mask") for p in crop_paths]).astype(np.float32)
        cores = os.cpu_count() or 1
        cropper.predict_paths(crop_paths[: 2 * batch], batch_size=batch, progress=False)  # starts the pool
        batch_crop, batch_crop_floor = [], []
        for run_i in range(args.crop_runs):
            batch_crop.append(common.timed(cropper.predict_paths, crop_paths, batch_size=batch, progress=False)[0])
            batch_crop_floor.append(common.timed(floor, crop_arrays)[0])
            print(f"crop-mask run {run_i + 1}/{args.crop_runs}: predict_paths {batch_crop[-1]:.2f}s, "
                  f"model.predict {batch_crop_floor[-1]:.2f}s for {len(crop_paths)} images")
        one_core = common.timed(cropper.predict_paths, crop_paths, batch_size=batch, progress=False,
                                workers=1)[0]
        print(f"crop-mask, one worker: {one_core:.2f}s")
        from braintumor.preprocess import get_preprocessor
        from braintumor.data.images import load_rgb

        some = crop_paths[: min(len(crop_paths), 32)]
        decode_seconds, decoded = common.timed(lambda: [load_rgb(p) for p in some])
        decode_only = decode_seconds / len(some)
        crop_only = common.timed(lambda: [get_preprocessor("crop-mask")(x) for x in decoded])[0] / len(decoded)
        predictor.close()
        cropper.close()

    latency = {}
    for name, values in (("ours", single_ours), ("floor", single_floor), ("direct_call", single_direct)):
        ms = [1000 * v for v in values]
        latency[name] = {"p50": common.percentile(ms, 50), "p95": common.percentile(ms, 95), **common.stats(ms)}
    throughput = {"ours": common.stats(common.rates(len(paths), batch_ours)),
                  "floor": common.stats(common.rates(len(paths), batch_floor))}
    throughput |= {"crop_mask_files": common.stats(common.rates(len(crop_paths), batch_crop)),
                   "crop_mask_floor": common.stats(common.rates(len(crop_paths), batch_crop_floor)),
                   "crop_mask_files_one_worker": common.stats(common.rates(len(crop_paths), [one_core]))}
    report.settings |= {"crop_images": len(crop_paths), "crop_runs": args.crop_runs, "cores": cores}
    report.settings |= {"images": len(paths), "single_calls": args.single, "image_size": size,
                        "backbone": card.get("backbone", {}).get("name"),
                        "weights": card.get("backbone", {}).get("weights")}
    report.results = {"model_load_seconds": load_seconds, "single_image_latency_ms": latency,
                      "batch_images_per_second": throughput}
    report.ratios = {
        "single-image p50 latency, ours / floor": latency["ours"]["p50"] / latency["floor"]["p50"],
        "batch throughput, floor / ours (time ratio)": common.ratio(throughput["floor"], throughput["ours"]),
        "crop-mask throughput, files / floor (goal >= 0.8)": common.ratio(throughput["crop_mask_files"],
                                                                          throughput["crop_mask_floor"]),
        "crop-mask throughput, all workers / one worker": common.ratio(throughput["crop_mask_files"],
                                                                       throughput["crop_mask_files_one_worker"]),
    }
    report.results["crop_mask_seconds_per_image_one_core"] = crop_only
    report.results["decode_seconds_per_image_one_core"] = decode_only
    # What this machine allows at best: every core busy, the network's core-seconds per image
    # (its floor rate uses every core) plus decoding and crop-mask, nothing hidden or lost.
    network = cores / throughput["crop_mask_floor"]["median"]
    bound = cores / (network + decode_only + crop_only)
    report.results["crop_mask_files_bound_images_per_second"] = bound
    report.ratios["crop-mask throughput, files / this machine's bound"] = (
        throughput["crop_mask_files"]["median"] / bound)
    report.headers = ["path", "single image p50 / p95 ms (min–max)", f"batch of {batch}: images/s median (min–max)"]
    for name, label in (("ours", "Predictor.predict_paths (files)"), ("floor", "model.predict (decoded arrays)")):
        lat = latency[name]
        report.row(label, f"{lat['p50']:.1f} / {lat['p95']:.1f} ({lat['min']:.1f}–{lat['max']:.1f})",
                   common.fmt(throughput[name]))
    report.row(f"predict_paths, crop-mask (files, {cores} workers)", "—", common.fmt(throughput["crop_mask_files"]))
    report.row("predict_paths, crop-mask (files, 1 worker)", "—", common.fmt(throughput["crop_mask_files_one_worker"]))
    report.row("model.predict (crop-masked arrays)", "—", common.fmt(throughput["crop_mask_floor"]))
    lat = latency["direct_call"]
    report.row("model(x) direct call (arrays, no predict())",
               f"{lat['p50']:.1f} / {lat['p95']:.1f} ({lat['min']:.1f}–{lat['max']:.1f})", "—")
    report.notes += [
        f"Model: {run} ({report.settings['backbone']}, weights {report.settings['weights'] or 'random'}), "
        f"{size}x{size}; loading it took {load_seconds:.1f} s (once, not in the figures).",
        f"{args.single} single-image calls; {args.runs} batch runs of {len(paths)} {card['task']} test images.",
        "The direct-call row shows how much of a single image's latency is model.predict's per-call set-up.",
        f"crop-mask: {args.crop_runs} runs of {len(crop_paths)} test images with {cores} decoding processes, "
        f"one with one; crop-mask alone costs {crop_only * 1000:.0f} ms per image on one core, so "
        f"{cores} cores cannot preprocess more than {cores / crop_only:.1f} images/s whatever the network does.",
        f"Bound: with the network at {1000 * network:.0f} core-ms per image (its floor rate on {cores} cores), "
        f"decoding {1000 * decode_only:.1f} and crop-mask {1000 * crop_only:.0f} core-ms, {cores} fully busy "
        f"cores give at most {bound:.1f} images/s from files ({bound / throughput['crop_mask_floor']['median']:.2f}x "
        f"the floor); 0.8x needs crop-mask at or below "
        f"{1000 * max(cores / (0.8 * throughput['crop_mask_floor']['median']) - network - decode_only, 0):.0f} "
        f"core-ms per image, or more cores.",
    ]
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
