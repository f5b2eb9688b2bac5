"""Out-of-distribution and modality checks: false flags on the held-out test split, junk caught.

For a run whose checks were fitted (``braintumor evaluate`` or ``braintumor fit-ood``):

* the **held-out Kaggle test split** of the model's own task — no image of it was used to
  fit the checks or choose their thresholds — counts how many in-distribution images are
  flagged out of distribution (the threshold was set to keep 99% of validation), and how
  many get any warning (OOD or modality);
* the **other modality's** test split (CT for an MRI model, and vice versa): how many are
  recognised as the wrong modality, and how many get any warning;
* **synthetic junk**: uniform noise (RGB and grey), flat images (black, grey, white), linear
  and radial gradients, checkerboards, and photos shipped by scikit-image (``skimage.data``:
  astronaut, coffee, chelsea, rocket, camera, …), each through the model's own preprocessing:
  how many are caught (any warning), flagged OOD, or called 'other'.

Run: ``python -m benchmarks.ood --model models/mri`` (``--smoke``: a throwaway random-weight
model fitted on a few images, to check the script works).
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "cat", "moon", "coins", "clock", "page",
          "text", "brick", "grass", "gravel", "immunohistochemistry", "hubble_deep_field", "retina",
          "colorwheel", "logo", "horse")


def junk_images(seed: int = 0, size: int = 256) -> dict[str, list[np.ndarray]]:
    """RGB ``uint8`` junk by kind, generated here (and skimage's photos)."""
    import skimage.data

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    grey = lambda a: np.repeat(np.asarray(a, np.uint8)[..., None], 3, axis=2)  # noqa: E731
    out: dict[str, list[np.ndarray]] = {
        "uniform noise (RGB)": [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(10)],
        "uniform noise (grey)": [grey(rng.integers(0, 256, (size, size))) for _ in range(10)],
        "flat": [np.full((size, size, 3), v, np.uint8) for v in (0, 32, 64, 96, 128, 160, 192, 224, 255)],
        "gradients": [grey(255 * xx), grey(255 * yy), grey(255 * (xx + yy) / 2), grey(255 * (1 - xx)),
                      grey(255 * np.clip(1 - np.hypot(xx - 0.5, yy - 0.5) * 2, 0, 1)),
                      grey(255 * np.clip(np.hypot(xx - 0.5, yy - 0.5) * 2, 0, 1))],
        "checkerboards": [grey(255 * (((np.arange(size)[:, None] // k) + (np.arange(size)[None] // k)) % 2))
                          for k in (2, 4, 8, 16, 32, 64)],
        "photos (skimage.data)": [],
    }
    for name in PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = grey(img)
        out["photos (skimage.data)"].append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    return out


def smoke_run(dest: Path) -> Path:
    """A throwaway random-weight MRI run whose checks are fitted on a few images."""
    from benchmarks.inference import throwaway_run
    from braintumor.models.modelcard import update_card

    run = throwaway_run(dest, "mobilenet_025", 64)
    update_card(run, task="mri", training={"config": {"task": "mri", "image_size": 64, "quick": True,
                                                      "quick_per_class": 12, "seed": 0}})
    return run


def main(argv: list[str] | None = None) -> int:
    p = common.parser(__doc__.splitlines()[0], runs=1)
    p.add_argument("--model", help="run or task folder with fitted checks (required unless --smoke)")
    p.add_argument("--fit", action="store_true", help="fit the checks first (braintumor fit-ood)")
    p.add_argument("--batch-size", type=int, default=32)
    args = common.parse(p, argv)
    if not args.smoke and not args.model:
        p.error("--model is required (or --smoke)")

    from braintumor.config import Config
    from braintumor.data.tasks import stratified_subset
    from braintumor.inference import Predictor, resolve_run
    from braintumor.ood import TASK_MODALITY, add_flat, fit_ood, is_flat
    from braintumor.preprocess import prepare_image
    from braintumor.study import load_split, quick_per_class

    tmp = tempfile.TemporaryDirectory(prefix="bench-ood-")
    config = Config(root=str(common.REPO), data_dir=args.data_dir)
    if args.smoke:
        run = smoke_run(Path(tmp.name))
        fit_ood(run, config, progress=False)
    else:
        run = resolve_run(args.model)
        if args.fit:
            fit_ood(run, config)
    predictor = Predictor.load(run)
    if predictor.checks is None:
        raise SystemExit(f"error: {predictor.checks_note}")
    card, checks = predictor.card, predictor.checks
    report = common.start("ood", "Out-of-distribution and modality checks: false flags and junk caught",
                          args, model=str(run), task=card["task"])
    size, pre = int(card["image_size"]), card["preprocess"]
    trained = Config.from_dict(card.get("training", {}).get("config", {}))
    seen = config.replace(image_size=size, preprocess=pre)

    def checked(images, originals=None):
        """The checks predict applies: features, plus the flat-image rule on the decoded
        originals (the Kaggle images are all far from flat: checked on the prepared ones)."""
        _, pooled = predictor.logits_and_features(np.asarray(images), args.batch_size)
        originals = images if originals is None else originals
        return add_flat(checks.check(pooled), [is_flat(x) for x in originals])

    def summarise(name: str, df, expected: str | None = None) -> dict:
        n = len(df)
        r = {"n": n, "flagged_ood": int((~df["in_distribution"]).sum()),
             "any_warning": int((df["warning"] != "").sum()),
             "modality": {m: int((df["modality"] == m).sum()) for m in ("CT", "MRI", "other")}}
        if expected:
            r["modality_correct"] = int((df["modality"] == expected).sum())
        shown_mod = ", ".join(f"{m} {c}" for m, c in r["modality"].items() if c)
        report.row(name, n, f"{r['flagged_ood']} ({r['flagged_ood'] / n:.1%})",
                   f"{r['any_warning']} ({r['any_warning'] / n:.1%})", shown_mod)
        return r

    results: dict = {}
    own = TASK_MODALITY.get(card["task"])
    test = load_split(seen, "test", card["task"], per_class=quick_per_class(trained, "test"),
                      seed=trained.seed, progress=False)
    results["test_in_distribution"] = summarise(f"Kaggle test split, {card['task']} (in distribution)",
                                                checked(test.images), own)
    other = {"CT": "MRI", "MRI": "CT"}.get(own or "")
    if other:
        pooled = load_split(seen, "test", "pooled", per_class=None, progress=False)
        rows = pooled.rows[pooled.rows["modality"] == other]
        per = 15 if args.smoke else 150
        rows = stratified_subset(rows, per, 0)
        results["test_other_modality"] = summarise(
            f"Kaggle test split, {other} ({per} per class; wrong modality)",
            checked(dataclasses.replace(pooled, rows=rows).images), other)
    junk = junk_images()
    results["junk"] = {}
    for kind, images in junk.items():
        prepared = np.stack([prepare_image(im, size, pre) for im in images])
        results["junk"][kind] = summarise(f"junk: {kind}", checked(prepared, images))
    all_junk = sum(r["n"] for r in results["junk"].values())
    caught = sum(r["any_warning"] for r in results["junk"].values())
    ood = sum(r["flagged_ood"] for r in results["junk"].values())
    results["junk_total"] = {"n": all_junk, "any_warning": caught, "flagged_ood": ood}
    report.row("junk: all", all_junk, f"{ood} ({ood / all_junk:.1%})", f"{caught} ({caught / all_junk:.1%})", "")
    report.headers = ["images", "n", "flagged out of distribution", "any warning", "modality called"]
    report.results = {"checks": card.get("ood"), **results}
    report.settings |= {"image_size": size, "preprocess": pre,
                        "backbone": card.get("backbone", {}).get("name"),
                        "weights": card.get("backbone", {}).get("weights")}
    s = card.get("ood") or {}
    report.notes += [
        f"Checks of {run}: OOD threshold {s.get('threshold', float('nan')):.2f} keeps "
        f"{s.get('val_keep_rate', float('nan')):.1%} of {s.get('n_val')} validation images "
        f"(fitted on {s.get('n_train')} training images, {s.get('feature_dim')} features).",
        "'any warning' = out of distribution (feature distance above the threshold, or a flat image), "
        "or modality 'other', or the modality the model is not for.",
        "Junk goes through the model's own preprocessing and resize, as predict does.",
    ]
    common.finish(report, args.out)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
