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
ifneq ($(wildcard $(SHARED)/datasets/external),)
export BRAINTUMOR_EXTERNAL_DIR ?= $(SHARED)/datasets/external
endif
export KERAS_HOME ?= $(HOME)/.keras
TASKS ?= ct mri
# Extra `braintumor train` options. Config's defaults are the study's CPU-sized schedule
# (studies/main.toml: head + 2 fine-tuning epochs); raise --epochs-finetune on a GPU.
TRAIN_ARGS ?=

.PHONY: install test reproduce index split train study notebook bench seed-weights clean-cache

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
	for t in $(TASKS); do $(VENV)/bin/braintumor train --task $$t $(TRAIN_ARGS) || exit 1; done

# The matched study (studies/main.toml), then the side studies of the MRI default's
# fine-tuning (finetune: 4 epochs, the default's schedule; speed: a cheaper one), resumable:
# trains and evaluates only the runs that are missing or stale, stops before a run that would
# overrun BUDGET minutes (per study), scores every finished MRI/pooled run on the external
# sets, then regenerates each study's report and README block.
# Commit models/*/study-* cards and reports/studies after each session.
BUDGET ?= 170
STUDIES ?= studies/main.toml studies/finetune.toml studies/speed.toml
study: install seed-weights
	for s in $(STUDIES); do $(VENV)/bin/braintumor study run --study $$s --budget-minutes $(BUDGET) || exit 1; done
	for s in $(STUDIES); do $(VENV)/bin/braintumor study status --study $$s || exit 1; done
	for s in $(STUDIES); do $(VENV)/bin/braintumor study report --study $$s --update-readme || exit 1; done

# Everything, headless: audit the data, check the committed split, run the matched study
# (every arm and seed, external sets included; resumable, so an interrupted `make reproduce`
# picks up where it stopped), the shortcut and source audits, then the notebook, and
# regenerate README's tables. Hours on a 2-core CPU (about 12 minutes per MRI run with its
# external sets; see studies/main.toml).
# QUICK=1 runs the same steps on small stratified subsets (train --quick per task instead of
# the study, 40-per-class audits, the notebook in QUICK mode) in a scratch project folder that
# links the caches, so the study's models, reports and README are left alone.
reproduce: install seed-weights
	@set -eo pipefail; root=.; audit=; \
	if [ -n "$(QUICK)" ]; then \
	  root=$$($(PY) -c "from braintumor.config import scratch_root; print(scratch_root())"); \
	  export BRAINTUMOR_ROOT=$$root; audit="--limit-per-class 40 --resamples 200"; \
	  echo "QUICK: small subsets; models and reports go to $$root"; fi; \
	PS4='+ [$$EPOCHREALTIME] '; set -x; \
	$(VENV)/bin/braintumor index; \
	$(VENV)/bin/braintumor audit-duplicates; \
	$(VENV)/bin/braintumor split --check; \
	if [ -n "$(QUICK)" ]; then \
	  for t in $(TASKS); do \
	    run=$$($(VENV)/bin/braintumor train --task $$t --quick $(TRAIN_ARGS) | tee /dev/stderr \
	          | sed -n 's/^model folder: //p'); \
	    $(VENV)/bin/braintumor evaluate --model $$run; done; \
	else \
	  for s in $(STUDIES); do $(VENV)/bin/braintumor study run --study $$s; \
	    $(VENV)/bin/braintumor study report --study $$s --update-readme; done; fi; \
	$(VENV)/bin/braintumor audit-shortcuts $$audit; \
	$(VENV)/bin/braintumor audit-sources $$audit; \
	: notebook next
	$(MAKE) --no-print-directory notebook

# Execute the study notebook headless, in place (QUICK=1: the few-minute smoke version,
# written to /tmp, models and reports in a scratch folder, README untouched).
notebook: install seed-weights
	$(VENV)/bin/papermill notebook.ipynb $(if $(QUICK),/tmp/notebook-quick.ipynb -p QUICK True,notebook.ipynb) -k python3
	$(if $(QUICK),,$(PY) -c "from braintumor.reporting.plots import compact_notebook_images as c; print(c('notebook.ipynb'))")
	$(if $(QUICK),,$(VENV)/bin/braintumor results --update-readme)

# Benchmarks: each against the obvious alternative, tables to stdout, JSON to
# reports/benchmarks/, then README's Performance block. Run on an otherwise idle machine
# (about 30 minutes on 2 cores). BENCH_ARGS=--smoke checks the scripts in seconds.
bench: install seed-weights
	$(PY) -m benchmarks.input_pipeline --images 1024 $(BENCH_ARGS)
	$(PY) -m benchmarks.index_build $(BENCH_ARGS)
	$(PY) -m benchmarks.training --steps 5 $(BENCH_ARGS)
	$(PY) -m benchmarks.inference $(BENCH_ARGS)
	$(if $(findstring --smoke,$(BENCH_ARGS)),,$(PY) -m benchmarks.readme)

clean-cache:
	rm -rf data/cache
