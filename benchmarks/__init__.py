"""Benchmarks: how fast the pipeline is, measured against what a user would write otherwise.

One script per figure, each runnable as ``python -m benchmarks.<name> [--smoke]``:

* ``input_pipeline`` — augmented training batches per second: ours vs
  ``keras.utils.image_dataset_from_directory`` with the same augmentation.
* ``index_build`` — seconds to index the whole dataset, cold and cached.
* ``training`` — images/s of phase 1 (frozen features) and phase 2 (fine-tuning) per
  backbone, with peak memory.
* ``inference`` — ``Predictor.predict_paths`` on image files vs ``model.predict`` on
  pre-decoded arrays.
* ``end_to_end`` — wall time of shell commands (the quick path, or ``make reproduce``).

Each prints the machine, a table (median and min–max over repeated runs) and writes the raw
numbers to ``reports/benchmarks/<name>.json``; ``--smoke`` runs a tiny input and writes to a
temporary folder instead. Shared helpers live in :mod:`benchmarks.common`.
"""
