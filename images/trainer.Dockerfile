# The GPU image of the train and evaluate steps: CUDA PyTorch, DeepSpeed, and the kernels that
# MiniCPM-V 4.6's Qwen3.5 backbone looks for (flash-linear-attention, causal-conv1d);
# without them it falls back to slow reference code. Build from the repository root:
#   docker build -f images/trainer.Dockerfile -t <registry>/trainer:<tag> .
# The devel base (not runtime) carries nvcc: causal-conv1d compiles when no prebuilt
# wheel matches, and DeepSpeed compiles its fused ops just in time on the GPU node.

ARG BASE_IMAGE=pytorch/pytorch:2.14.1-cuda12.6-cudnn9-devel
FROM ${BASE_IMAGE}

ARG DEEPSPEED_VERSION=0.19.8
ARG FLA_VERSION=0.6.0
ARG CAUSAL_CONV1D_VERSION=1.7.0
ARG NINJA_VERSION=1.13.2
# H100 is sm_90; compiling for that one architecture keeps the build short.
ARG TORCH_CUDA_ARCH_LIST=9.0
ARG MAX_JOBS=8

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST} \
    MAX_JOBS=${MAX_JOBS}

# The evaluate step runs here too (it generates on the GPU), and pycocoevalcap's PTB
# tokenizer and METEOR run on Java.
RUN apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

# The base image's torch is the pin: record it, and every install below is held to it.
RUN pip list --format=freeze | grep -E '^(torch|torchvision)==' > /opt/torch-constraints.txt \
    && grep -q '^torch==' /opt/torch-constraints.txt

# DeepSpeed and causal-conv1d build against the installed torch (no build isolation),
# so their compiled parts match the CUDA and ABI of the base image.
RUN pip install --constraint /opt/torch-constraints.txt "ninja==${NINJA_VERSION}" packaging wheel \
    && pip install --constraint /opt/torch-constraints.txt "flash-linear-attention==${FLA_VERSION}" \
    && pip install --constraint /opt/torch-constraints.txt --no-build-isolation \
        "deepspeed==${DEEPSPEED_VERSION}" "causal-conv1d==${CAUSAL_CONV1D_VERSION}"

COPY pyproject.toml README.md /opt/uicap/src/
COPY components/ /opt/uicap/src/components/
COPY pipelines/ /opt/uicap/src/pipelines/
RUN pip install --constraint /opt/torch-constraints.txt "/opt/uicap/src[train]" \
    && rm -rf /opt/uicap/src

RUN groupadd --gid 10001 uicap \
    && useradd --uid 10001 --gid 10001 --home-dir /home/uicap --create-home \
        --shell /usr/sbin/nologin uicap \
    && mkdir -p /home/uicap/.cache/huggingface \
    && chown -R 10001:10001 /home/uicap \
    && chown 10001:10001 "$(python -c 'import pycocoevalcap, os; print(os.path.dirname(pycocoevalcap.__file__))')/tokenizer"

# HOME holds the caches that triton (flash-linear-attention) and DeepSpeed's op builder
# write at run time; the train step mounts the shared Hub cache over HF_HOME.
ENV HOME=/home/uicap \
    HF_HOME=/home/uicap/.cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1

USER 10001:10001
WORKDIR /home/uicap

ENTRYPOINT ["uicap"]
CMD ["train", "--help"]
