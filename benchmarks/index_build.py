"""Seconds to build the image index (decode + SHA-256 + pHash of every file), cold and cached.

Cold: :func:`braintumor.data.index.load_index` into a fresh temporary project root, so no
cache exists and every image is read, hashed and decoded (in parallel, one worker per
core). Cached: the same call again, which lists the files, checks the dataset
fingerprint and reads the cached table. The dataset files themselves are in the OS page
cache after the first run, as they are on any machine that just downloaded them.
Run: ``python -m benchmarks.index_build [--smoke]``.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import common


def tiny_dataset(root: Path, dest: Path, per_folder: int = 3) -> Path:
    """A copy of the dataset's layout holding ``per_folder`` symlinked images per class folder."""
    from braintumor.data.dataset import list_image_files

    entries, links, taken = list_image_files(root), {}, {}
    for e in entries:
        folder = str(Path(e.relpath).parent)
        if taken.get(folder, 0) < per_folder:
            taken[folder] = taken.get(folder, 0) + 1
            links[e.relpath] = root / e.relpath
    return common.symlink_tree(links, dest)


def main(argv: list[str] | None = None) -> int:
    args = common.parse(common.parser(__doc__.splitlines()[0]), argv)

    from braintumor.config import Config
    from braintumor.data.index import load_index

    root = common.dataset_root(args.data_dir)
    cold, cached, n_images = [], [], 0
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp:
        if args.smoke:
            root = tiny_dataset(root, Path(tmp) / "Dataset")
        report = common.start("index_build", "Index build: seconds for the whole index", args,
                              dataset=str(root))
        for run in range(args.runs):
            config = Config(root=str(Path(tmp) / f"project-{run}"))  # empty: no cache
            t_cold, df = common.timed(load_index, config, root=root, progress=False)
            t_cached, again = common.timed(load_index, config, root=root, progress=False)
            assert len(again) == len(df)
            n_images = len(df)
            cold.append(t_cold)
            cached.append(t_cached)
            print(f"run {run + 1}/{args.runs}: cold {t_cold:.1f}s, cached {t_cached:.2f}s")

    s_cold, s_cached = common.stats(cold), common.stats(cached)
    ips = common.stats(common.rates(n_images, cold))
    report.settings["images"] = n_images
    report.results = {"cold_seconds": s_cold, "cached_seconds": s_cached, "cold_images_per_second": ips}
    report.ratios = {"cold / cached": common.ratio(s_cold, s_cached)}
    report.headers = ["index", "seconds median (min–max)", "images/s"]
    report.row("cold (decode + SHA-256 + pHash, no cache)", common.fmt(s_cold, 2), common.fmt(ips))
    report.row("cached (second load_index)", common.fmt(s_cached, 2), "—")
    report.notes.append(f"{n_images} images, {args.runs} runs; workers = one per core "
                        "(braintumor.data.index.build_index).")
    common.finish(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
