# Two entry points for a fresh machine (see README "Quick start"):
#   make demo  - install, then run the whole pipeline on the embedded default recipe
#   make test  - install with test extras, then run the test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# CPU wheel of torch; on a GPU machine install your CUDA torch first and this is a no-op
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test demo test

install:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e .

install-test:
	@$(PYTHON) -c "import torch" 2>/dev/null || $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[test]"

demo: install
	zhllama demo

test: install-test
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(PYTHON) -m pytest -q
