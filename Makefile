# Two commands do all the set-up:  `make lab` opens the course, `make test` runs every test.
# Both build the same virtual environment in .venv (once; again only when pyproject.toml changes).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=300 --nbval-kernel-startup-timeout=120 \
         --nbval-sanitize-with tests/nbval_sanitize.cfg

.PHONY: lab test test-fast test-notebooks test-browser lint notebooks env clean

env: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade --quiet "pip>=23"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# CIFAR-10 for the tests and the notebook builds: the course's copy, kept next to the repository on the
# build and CI machines (never inside it), handed over explicitly, since the package never looks there.
# Without that file, or with VIT_LESSONS_DATA already set, nothing changes: lessons read VIT_LESSONS_DATA
# or ~/.cache/vit_lessons/data, download CIFAR-10 there when online, and else train on the 8x8 digits.
SHARED_CIFAR := $(wildcard $(abspath ../shared/data/cifar10-jpeg.tar.gz))
ifneq ($(SHARED_CIFAR),)
ifndef VIT_LESSONS_DATA
test test-fast notebooks: export VIT_LESSONS_DATA := $(SHARED_CIFAR)
endif
endif

# Containers and cloud machines often run as root, where Jupyter refuses to start without --allow-root.
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) notebooks/

test: $(STAMP)
	$(VENV)/bin/ruff check vit_lessons tests tools
	$(PY) -m pytest tests -q -m "not browser" --ignore=tests/notebooks
	VIT_LESSONS_QUICK=1 $(PY) -m pytest -q $(NBVAL) $(NOTEBOOKS)
	VIT_LESSONS_QUICK=1 $(PY) -m pytest -q tests/notebooks -m "not browser"
	if [ -x /usr/bin/chromium ]; then $(MAKE) test-browser; else echo "skipping the browser test: no /usr/bin/chromium"; fi

# Lesson 09's explorer in a real JupyterLab, driven by headless Chromium (Debian's chromium + playwright).
test-browser: $(STAMP)
	$(PY) -m pytest -q -m browser tests/browser

test-fast: $(STAMP)
	$(PY) -m pytest tests -q -m "not slow and not browser"

lint: $(STAMP)
	$(VENV)/bin/ruff check vit_lessons tests tools

# Re-execute every lesson in full mode and save it with outputs (what students read on GitHub).
notebooks: $(STAMP)
	$(PY) tools/build_notebooks.py --execute notebooks/src/*.py

clean:
	rm -rf $(VENV) .cache/runtime-venv
