# The CPU image of every pipeline step but train and evaluate (lineage, ingest, prepare,
# champion, register, gate, promote, notify): Python, uicap and what those steps import,
# installed only from images/locks/runtime.txt. No torch (those steps never import it:
# prepare counts tokens with the tokenizer alone) and no Java (only evaluate scores with
# pycocoevalcap). Build from the repository root; `make images` passes the arguments:
#   podman build -f images/runtime.Dockerfile --secret id=extra-ca,src=CA.pem -t REF .

# The official Python base, pinned by digest. A local build passes a Debian base made by
# images/debian-base.sh; both need only `python3 -m venv`.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b
FROM ${BASE_IMAGE}

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PATH=/opt/venv/bin:$PATH

COPY images/with-extra-ca.sh /usr/local/bin/with-extra-ca
COPY images/locks/runtime.txt /opt/uicap/locks/runtime.txt

# Every dependency pinned and hash-checked; a missing or changed file fails the build.
RUN --mount=type=secret,id=extra-ca \
    python3 -m venv /opt/venv \
    && with-extra-ca pip install --require-hashes -r /opt/uicap/locks/runtime.txt

# The register step pins the registered model's requirements to the trainer's lock (what
# the model was trained and evaluated with); this image only reads it.
COPY images/locks/trainer.txt /opt/uicap/locks/trainer.txt

# uicap itself, with nothing resolved beyond the lock.
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
    && chown -R 10001:10001 /home/uicap

# The commit the image was built from: registered model versions carry it as a tag.
# Declared here, last, so that a new commit reuses every layer above.
ARG CODE_VERSION=unknown
ENV HOME=/home/uicap \
    HF_HOME=/home/uicap/.cache/huggingface \
    MLFLOW_DISABLE_TELEMETRY=true \
    PYTHONUNBUFFERED=1 \
    UICAP_CODE_VERSION=${CODE_VERSION} \
    UICAP_SERVING_LOCK=/opt/uicap/locks/trainer.txt

LABEL org.opencontainers.image.title="uicap runtime" \
      org.opencontainers.image.revision="${CODE_VERSION}"

# Numeric, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
USER 10001:10001
WORKDIR /home/uicap

ENTRYPOINT ["uicap"]
CMD ["--help"]
