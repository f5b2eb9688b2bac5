"""One way to run a per-image job over many images: in worker processes when there are
enough of them to pay for the pool, in this process otherwise, with a progress bar."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from tqdm.auto import tqdm

J = TypeVar("J")
R = TypeVar("R")


def parallel_map(fn: Callable[[J], R], jobs: Sequence[J], workers: int | None = None, *,
                 min_jobs: int = 64, chunksize: int = 32, desc: str = "", progress: bool = True,
                 unit: str = "img") -> Iterator[R]:
    """``fn(job)`` for every job, in order. ``fn`` must be a module-level function (it is
    pickled to the workers); ``workers`` defaults to every core, and one worker or at most
    ``min_jobs`` jobs run in this process."""
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > min_jobs:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield from tqdm(pool.map(fn, jobs, chunksize=chunksize), total=len(jobs), desc=desc,
                            disable=not progress, unit=unit)
    else:
        yield from (fn(job) for job in tqdm(jobs, desc=desc, disable=not progress, unit=unit))
