# `make demo` and `make test` on a machine that has only python3 and make: both build .venv once (a stamp
# file marks each finished install, so a second run installs nothing), then run from it.
#
# Torch is installed before requirements.txt, whose `torch>=2.11` is then already met: on Linux, PyPI's
# default torch is a multi-GB CUDA build, which a CPU-only machine must not pull by accident.
#  - A CUDA device (nvidia-smi lists one): requirements.txt brings PyPI's CUDA build.
#  - Otherwise the pinned CPU build, from the first of:
#    1. a wheel that pip's own configuration already provides on disk (find-links, --no-index: nothing is
#       downloaded; this is how CI machines that keep the wheel locally install it, with no wait on an
#       index they cannot reach);
#    2. PyTorch's CPU index (--index-url, no extra index: torch can only come from there).
#    Neither step ever asks PyPI for torch, so neither can install the CUDA build. Torch's own small
#    dependencies come with requirements.txt.

PYTHON ?= python3
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
VENV := .venv
PIP := $(VENV)/bin/python -m pip

.PHONY: demo test

demo: $(VENV)/.installed
	$(VENV)/bin/python demo.py

test: $(VENV)/.installed-dev
	$(VENV)/bin/python -m pytest -q

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); exit 1; }

$(VENV)/.installed: $(VENV)/bin/python requirements.txt
	@if nvidia-smi -L >/dev/null 2>&1; then \
		echo "CUDA device found: torch comes from requirements.txt"; \
	elif $(PIP) install --quiet --no-index --no-deps "torch==$(TORCH_VERSION)" >/dev/null 2>&1; then \
		echo "no CUDA device: installed torch $(TORCH_VERSION) from a wheel on this machine"; \
	else \
		echo "no CUDA device: installing the CPU build of torch $(TORCH_VERSION) from $(TORCH_CPU_INDEX)"; \
		$(PIP) install --quiet --index-url $(TORCH_CPU_INDEX) "torch==$(TORCH_VERSION)"; \
	fi
	$(PIP) install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PIP) install --quiet -r requirements-dev.txt
	touch $@
