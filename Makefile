# Make targets are the documented entry points; each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
SHARED ?= $(abspath ../shared)
# Use the local dataset mirror when there is one and the user has not chosen a folder.
ifneq ($(wildcard $(SHARED)/datasets/brain-tumor-multimodal-ct-mri/Dataset),)
export BRAINTUMOR_DATA_DIR ?= $(SHARED)/datasets/brain-tumor-multimodal-ct-mri/Dataset
endif
export KERAS_HOME ?= $(HOME)/.keras
TASKS ?= ct mri

.PHONY: install test reproduce index split train seed-weights clean-cache

$(VENV)/.installed: requirements.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

install: $(VENV)/.installed

# Offline machines: put the shared MobileNet file where Keras' own download would put it.
seed-weights:
	@if [ -f $(SHARED)/weights/mobilenet_2_5_224_tf_no_top.h5 ]; then \
	  mkdir -p $(KERAS_HOME)/models && cp -n $(SHARED)/weights/mobilenet_2_5_224_tf_no_top.h5 $(KERAS_HOME)/models/; fi

test: install seed-weights
	$(PY) -m pytest -q

index: install
	$(VENV)/bin/braintumor index

split: install
	$(VENV)/bin/braintumor split

train: install seed-weights
	for t in $(TASKS); do $(VENV)/bin/braintumor train --task $$t || exit 1; done

reproduce: install seed-weights
	$(VENV)/bin/braintumor index
	$(VENV)/bin/braintumor audit-duplicates
	$(VENV)/bin/braintumor split
	git diff --exit-code --stat data/splits/ || (echo "the regenerated split differs from the committed one" && exit 1)

clean-cache:
	rm -rf data/cache
