# The CPU image every pipeline step runs in except train: Python, uicap, and Java for
# pycocoevalcap's METEOR scorer and PTB tokenizer. Build from the repository root:
#   docker build -f images/runtime.Dockerfile -t <registry>/runtime:<tag> .
# (`make images` does this with the pins below passed as build arguments.)

ARG PYTHON_VERSION=3.11
ARG DEBIAN_RELEASE=bookworm

# --- build: a virtual environment with pinned CPU torch, then the package -----------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS build

ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

# torch first, from the CPU index, pinned; the constraints file keeps every later
# install from resolving another torch (the CUDA build on PyPI is several GB).
RUN pip install --index-url "${TORCH_INDEX_URL}" \
        "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}" \
    && printf 'torch==%s\ntorchvision==%s\n' "${TORCH_VERSION}" "${TORCHVISION_VERSION}" \
        > /opt/venv/torch-constraints.txt

COPY pyproject.toml README.md /src/
COPY components/ /src/components/
COPY pipelines/ /src/pipelines/
RUN pip install --constraint /opt/venv/torch-constraints.txt /src

# --- runtime: the slim base, a JRE, the environment, a non-root user ----------------
FROM python:${PYTHON_VERSION}-slim-${DEBIAN_RELEASE} AS runtime

# The JRE's post-install scripts expect the man1 folder that slim images leave out.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends default-jre-headless \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 10001 uicap \
    && useradd --uid 10001 --gid 10001 --home-dir /home/uicap --create-home \
        --shell /usr/sbin/nologin uicap

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    HOME=/home/uicap \
    HF_HOME=/home/uicap/.cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1

# pycocoevalcap's PTB tokenizer writes its temporary file next to its jar, so that one
# folder must be writable by the user the steps run as.
RUN mkdir -p "${HF_HOME}" \
    && chown -R 10001:10001 /home/uicap \
    && chown 10001:10001 /opt/venv/lib/python*/site-packages/pycocoevalcap/tokenizer

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /home/uicap

ENTRYPOINT ["uicap"]
CMD ["--help"]
