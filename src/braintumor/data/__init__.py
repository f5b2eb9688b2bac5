"""The data layer, importable without TensorFlow: the dataset on disk, decoded images, the
per-image index, duplicate groups, the split manifest and what each task selects.

* :mod:`~braintumor.data.dataset`: locating / downloading the Kaggle dataset, its layout;
* :mod:`~braintumor.data.images`: the only code that opens image files;
* :mod:`~braintumor.data.index`: the cached per-image table;
* :mod:`~braintumor.data.duplicates`: duplicate groups;
* :mod:`~braintumor.data.splits`: the group-aware split and its manifest;
* :mod:`~braintumor.data.tasks`: task definitions, labels, subsets.
"""
