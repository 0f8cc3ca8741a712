# The GPU image of the train and evaluate steps: uicap with CUDA torch, PEFT, DeepSpeed,
# the evaluation metrics (pycocoevalcap on Java, MiniLM), all from images/locks/trainer.txt,
# then the CUDA-kernel layer MiniCPM-V 4.6's Qwen3.5 backbone looks for on a GPU
# (flash-linear-attention, causal-conv1d, and nvcc for DeepSpeed's fused ops), from
# images/locks/cuda-toolchain.txt and cuda-kernels.txt. Build from the repository root; `make images` passes the
# arguments:
#   podman build -f images/trainer.Dockerfile --secret id=extra-ca,src=CA.pem -t REF .
#
# torch's wheel carries the CUDA runtime, cuDNN and NCCL it was built with, so the base is
# the same Python base as the runtime image; nvcc comes as a pinned wheel of the same CUDA
# release. The node needs only the NVIDIA driver (GKE installs it).

ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE}

# /usr/local/cuda is the kernel layer's toolkit (absent with CUDA_KERNELS=skip). Only its
# bin/ is on PATH: torch and DeepSpeed find the toolkit from nvcc there when it exists. A
# CUDA_HOME would make DeepSpeed's install look for an nvcc that is not there yet.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:/usr/local/cuda/bin:$PATH

COPY images/with-extra-ca.sh /usr/local/bin/with-extra-ca

# pycocoevalcap's PTB tokenizer and METEOR run on Java. The JRE's post-install scripts
# expect the man1 folder that slim images leave out.
RUN --mount=type=secret,id=extra-ca \
    mkdir -p /usr/share/man/man1 \
    && with-extra-ca apt-get update \
    && with-extra-ca apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

COPY images/locks/trainer.txt /opt/uicap/locks/trainer.txt

# Every dependency pinned and hash-checked, torch and its CUDA libraries included.
RUN --mount=type=secret,id=extra-ca \
    python3 -m venv /opt/venv \
    && with-extra-ca pip install --require-hashes -r /opt/uicap/locks/trainer.txt

# build: compile the kernel layer (long: it compiles CUDA code, though no GPU). skip: leave
# it out, for builds that only run the pipeline on a CPU; the build says so, and the
# image's label and /opt/uicap/cuda-kernels say so for ever after.
ARG CUDA_KERNELS=build
# H100 is sm_90; compiling for that one architecture keeps the build short.
ARG TORCH_CUDA_ARCH_LIST=9.0
ARG MAX_JOBS=8

# Copied here, so that a change to the kernel layer keeps the torch layer above cached.
COPY images/locks/cuda-toolchain.txt images/locks/cuda-kernels.txt /opt/uicap/locks/

# The CUDA-kernel layer. nvcc of torch's CUDA release first (its wheel ships no unversioned
# libcudart.so, which the extension links), then causal-conv1d built against the
# installed torch (no build isolation), compiled here rather than fetched as a prebuilt
# binary from outside the lock. DeepSpeed compiles its fused ops with the same nvcc.
RUN --mount=type=secret,id=extra-ca \
    set -e; \
    if [ "${CUDA_KERNELS}" = "skip" ]; then \
        echo "trainer: CUDA_KERNELS=skip: flash-linear-attention, causal-conv1d and nvcc are NOT in this image; on a GPU MiniCPM-V 4.6 falls back to slow reference kernels. Build with CUDA_KERNELS=build for a cluster."; \
    elif [ "${CUDA_KERNELS}" = "build" ]; then \
        with-extra-ca pip install --require-hashes -r /opt/uicap/locks/cuda-toolchain.txt; \
        toolkit="$(python3 -c 'import nvidia, os; print(os.path.join(list(nvidia.__path__)[0], "cu13"))')"; \
        ln -s "${toolkit}" /usr/local/cuda; \
        ln -sf libcudart.so.13 /usr/local/cuda/lib/libcudart.so; \
        export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}" MAX_JOBS="${MAX_JOBS}" \
            CAUSAL_CONV1D_FORCE_BUILD=TRUE; \
        nvcc --version; \
        with-extra-ca pip install --require-hashes --no-build-isolation \
            -r /opt/uicap/locks/cuda-kernels.txt; \
        python3 -c "import fla, causal_conv1d"; \
    else \
        echo "trainer: CUDA_KERNELS must be build or skip, not ${CUDA_KERNELS}" >&2; exit 1; \
    fi; \
    echo "${CUDA_KERNELS}" > /opt/uicap/cuda-kernels

COPY pyproject.toml README.md /opt/uicap/src/
COPY components/ /opt/uicap/src/components/
COPY pipelines/ /opt/uicap/src/pipelines/
RUN pip install --no-deps --no-build-isolation /opt/uicap/src \
    && rm -rf /opt/uicap/src \
    && pip check

RUN groupadd --gid 10001 uicap \
    && useradd --uid 10001 --gid 10001 --home-dir /home/uicap --create-home \
        --shell /usr/sbin/nologin uicap \
    && mkdir -p /home/uicap/.cache/huggingface \
    && chown -R 10001:10001 /home/uicap \
    && chown 10001:10001 "$(python3 -c 'import pycocoevalcap; print(list(pycocoevalcap.__path__)[0])')/tokenizer"

# HOME holds the caches that triton (flash-linear-attention) and DeepSpeed's op builder
# write at run time; the train step mounts the shared Hub cache over HF_HOME.
# The commit the image was built from: registered model versions carry it as a tag.
# Declared here, last, so that a new commit reuses every layer above.
ARG CODE_VERSION=unknown
ENV HOME=/home/uicap \
    HF_HOME=/home/uicap/.cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1 \
    UICAP_CODE_VERSION=${CODE_VERSION} \
    UICAP_SERVING_LOCK=/opt/uicap/locks/trainer.txt

LABEL org.opencontainers.image.title="uicap trainer" \
      org.opencontainers.image.revision="${CODE_VERSION}" \
      org.uicap.cuda-kernels="${CUDA_KERNELS}"

USER 10001:10001
WORKDIR /home/uicap

ENTRYPOINT ["uicap"]
CMD ["train", "--help"]
