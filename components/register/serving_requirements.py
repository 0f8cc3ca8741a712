"""The registered model's pip requirements, pinned from the trainer image's lock.

Serving rebuilds the captioner's environment from these (`mlflow models serve`, a
serving image), so they must be the versions it was trained and evaluated with: the
trainer lock's, not whatever the registering process happens to have installed (the
register step runs in the runtime image, which holds no torch at all).
"""

from __future__ import annotations

import os
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# Set by the images (images/*.Dockerfile); from a checkout the repository's lock is used.
LOCK_ENV = "UICAP_SERVING_LOCK"
REPO_LOCK = Path(__file__).resolve().parents[2] / "images" / "locks" / "trainer.txt"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")

# What the pyfunc model imports when it loads and predicts, besides the `components`
# package it carries (`code_paths`). No index has `uicap`, so the model never asks for it.
SERVING_PACKAGES = (
    "mlflow",
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "safetensors",
    "peft",
    "accelerate",
    "jinja2",
    "pillow",
    "numpy",
    "pandas",
    "pydantic",
    "pyyaml",
)


def canonical(name: str) -> str:
    """PEP 503's normal form: `huggingface_hub` and `Huggingface-Hub` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_versions(lock: Path) -> dict[str, str]:
    """`name==version` lines of a pip lock (hash and comment lines skipped)."""
    pins = {}
    for line in lock.read_text().splitlines():
        found = _PIN.match(line.strip())
        if found:
            pins[canonical(found.group(1))] = found.group(2)
    return pins


def serving_lock() -> Path | None:
    named = os.environ.get(LOCK_ENV)
    if named:
        if not Path(named).is_file():
            raise FileNotFoundError(f"${LOCK_ENV} names {named}, which does not exist")
        return Path(named)
    return REPO_LOCK if REPO_LOCK.is_file() else None


def pip_requirements(lock: Path | None = None) -> list[str]:
    """Each serving package at the lock's version; without a lock (uicap installed from a
    wheel), at the installed version; a package neither knows stays unpinned."""
    lock = lock or serving_lock()
    pins = locked_versions(lock) if lock is not None else {}
    pinned = []
    for package in SERVING_PACKAGES:
        found = pins.get(canonical(package)) or installed_version(package)
        pinned.append(f"{package}=={found}" if found else package)
    return pinned


def installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None
