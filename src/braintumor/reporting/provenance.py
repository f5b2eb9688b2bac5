"""Where a result came from: library versions, the git commit, the machine.

Model cards (:mod:`braintumor.models.modelcard`), evaluation reports and the benchmarks
(``benchmarks/common.py``) all record provenance through these functions, so a card and
a benchmark describe the same machine the same way.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

VERSIONED_PACKAGES = ("braintumor", "tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn", "pillow")


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def package_versions() -> dict[str, str]:
    """Python and the installed versions of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        version = package_version(name)
        if version is not None:
            out[name] = version
    return out


def now_iso() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# -- git ------------------------------------------------------------------------------------
def git(root: str | Path, *args: str, check: bool = False) -> str:
    """The stripped standard output of ``git <args>`` run in ``root``."""
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                          check=check).stdout.strip()


def git_commit(root: str | Path) -> str | None:
    """The checkout's commit, suffixed ``-dirty`` when tracked files differ from it."""
    try:
        sha = git(root, "rev-parse", "HEAD", check=True)
        dirty = git(root, "status", "--porcelain", "--untracked-files=no")
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def code_version(root: str | Path, paths: tuple[str, ...]) -> str:
    """The checkout's short commit, with ``+changes`` when any of ``paths`` (the code, not
    README or reports) differs from it in the working tree; ``unknown`` without git."""
    try:
        commit = git(root, "rev-parse", "--short", "HEAD")
        changed = commit and git(root, "status", "--porcelain", "--untracked-files=no", "--", *paths)
    except (OSError, subprocess.SubprocessError):  # no git on this machine
        return "unknown"
    return (commit + ("+changes" if changed else "")) if commit else "unknown"


# -- the machine ----------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int | None:
    """Cores this process may run on (its affinity), else all logical cores."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def ram_bytes() -> int | None:
    """Physical memory of the machine, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def gpu_names() -> list[str]:
    """TensorFlow's GPU devices (imports TensorFlow)."""
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def machine() -> dict:
    """CPU, cores, RAM, GPUs and library versions: what absolute timings depend on."""
    import tensorflow as tf

    ram = ram_bytes()
    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "ram_gb": round(ram / 2**30, 1) if ram else None,
        "gpus": gpu_names(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": package_version("keras"),
        "numpy": package_version("numpy"),
        "pillow": package_version("pillow"),
    }


def machine_description() -> str:
    """One line for reports: CPU, usable cores, RAM, GPUs. Absolute timings depend on it."""
    ram = ram_bytes()
    gpus = gpu_names()
    return (f"{cpu_model()}, {usable_cores()} cores, {f'{ram / 2**30:.0f} GiB RAM' if ram else 'RAM unknown'}, "
            f"GPU: {', '.join(gpus) if gpus else 'none'}")
