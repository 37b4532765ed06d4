# The two set-up commands of the README: `make demo` and `make test` (each creates .venv and installs first).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# A prebuilt mmcv wheel (compiled ops, torch 2.13.0, CPython 3.11) saves a ~30 min source build when present.
ifneq ($(wildcard ../shared/wheels/*.whl),)
export PIP_FIND_LINKS := $(strip $(PIP_FIND_LINKS) $(abspath ../shared/wheels))
endif

.PHONY: install demo test lint unit ui bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip "setuptools>=77.0.3,<81" wheel
	# torch first: mmcv's setup.py imports it when it has to build from source (--no-build-isolation)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q --no-build-isolation -e ".[dev]"
	# mmengine pulls the GUI build of OpenCV; keep exactly one OpenCV, headless 4.x (5.x dropped HOG and Haar)
	$(BIN)/pip uninstall -y -q opencv-python opencv-contrib-python 2>/dev/null || true
	$(BIN)/pip install -q --force-reinstall --no-deps "opencv-python-headless>=4.9,<5"
	$(BIN)/python -c "import cv2, mmcv.ops, mmdet, dagster, av; assert cv2.__version__.startswith('4.'), cv2.__version__; print('installed: opencv', cv2.__version__, '| mmdet', mmdet.__version__, '| dagster', dagster.__version__)"
	touch $@

demo: install
	$(BIN)/fm demo

# everything: lint (ruff), types of the pure core (mypy), then every test (unit, assets, e2e)
test: lint
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# the fast unit tests alone (no Dagster runs, no video encoding; under a minute)
unit: install
	$(BIN)/pytest -q tests/unit

ui: install
	$(BIN)/fm ui

bench: install
	$(BIN)/python bench/raw_clips.py

clean:
	rm -rf $(VENV) .fm
