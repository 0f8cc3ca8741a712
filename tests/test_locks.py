"""The locks in images/locks/: complete, hash-checked, mutually consistent, and what ran.

`make lock` (uv) writes them; these tests catch a pyproject.toml edited without
re-locking, two locks that disagree on a version, a line without hashes, torch creeping
into the runtime image, and a test environment that is not the dev lock.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from components.register.serving_requirements import (
    SERVING_PACKAGES,
    canonical,
    locked_versions,
    pip_requirements,
)

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "images" / "locks"
LOCK_NAMES = ("dev", "runtime", "trainer", "cuda-toolchain", "cuda-kernels")


def lock(name: str) -> dict[str, str]:
    return locked_versions(LOCKS / f"{name}.txt")


def requirement_blocks(text: str) -> list[str]:
    """One string per requirement: its line and its continuation lines."""
    blocks: list[str] = []
    for line in text.splitlines():
        if re.match(r"^[A-Za-z0-9]", line):
            blocks.append(line)
        elif blocks and line.startswith("    --hash="):
            blocks[-1] += "\n" + line
    return blocks


def project_requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in found if canonical(r.name) != "uicap"]


@pytest.mark.parametrize("name", LOCK_NAMES)
def test_every_pin_is_exact_and_hashed(name: str) -> None:
    blocks = requirement_blocks((LOCKS / f"{name}.txt").read_text())
    assert len(blocks) >= 5
    for block in blocks:
        assert "==" in block.splitlines()[0], block
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no hash: {block}"


@pytest.mark.parametrize(
    ("name", "extras"),
    [
        ("dev", ("model", "train", "serving", "capture", "dev")),
        ("trainer", ("model", "train")),
        ("runtime", ()),
    ],
)
def test_each_lock_satisfies_pyproject(name: str, extras: tuple[str, ...]) -> None:
    pins = lock(name)
    for requirement in project_requirements(*extras):
        found = pins.get(canonical(requirement.name))
        assert found is not None, f"{requirement} is not in {name}.txt: run `make lock`"
        assert requirement.specifier.contains(found, prereleases=True), (
            f"{name}.txt pins {requirement.name}=={found}, outside {requirement}: `make lock`"
        )


@pytest.mark.parametrize("name", ["runtime", "trainer"])
def test_the_image_locks_hold_the_dev_locks_versions(name: str) -> None:
    dev, image = lock("dev"), lock(name)
    assert {p: v for p, v in image.items() if dev.get(p) != v} == {}


def test_the_kernel_layer_keeps_the_trainers_versions_and_torchs_cuda() -> None:
    trainer, toolchain, kernels = lock("trainer"), lock("cuda-toolchain"), lock("cuda-kernels")
    for layer in (toolchain, kernels):
        assert {p: v for p, v in layer.items() if p in trainer and trainer[p] != v} == {}
    assert {p: v for p, v in kernels.items() if p in toolchain and toolchain[p] != v} == {}
    # nvcc from the CUDA release torch was built against (13.0.x), never a newer one.
    runtime_minor = trainer["nvidia-cuda-runtime"].split(".")[:2]
    assert toolchain["nvidia-cuda-nvcc"].split(".")[:2] == runtime_minor
    assert {"causal-conv1d", "flash-linear-attention"} <= set(kernels)


def test_the_runtime_image_holds_no_torch_or_gpu_library() -> None:
    runtime = lock("runtime")
    heavy = [
        p for p in runtime if p in {"torch", "torchvision", "triton"} or p.startswith("nvidia")
    ]
    assert heavy == []


def test_capture_stays_out_of_the_images() -> None:
    """`uicap capture` runs beside the product under test, not in a pipeline step."""
    assert "playwright" in lock("dev")
    assert [name for name in ("runtime", "trainer") if "playwright" in lock(name)] == []


def test_this_environment_is_the_dev_lock() -> None:
    """`make install` installs dev.txt: the tests run on exactly its versions."""
    installed = {
        canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
    }
    differ = {
        package: (pinned, installed.get(package))
        for package, pinned in lock("dev").items()
        if installed.get(package, "").split("+")[0] != pinned
    }
    assert differ == {}, "the environment differs from images/locks/dev.txt: `make install`"


def test_the_registered_models_requirements_come_from_the_trainer_lock(tmp_path: Path) -> None:
    pins = lock("trainer")
    required = pip_requirements()
    assert len(required) == len(SERVING_PACKAGES)
    assert "torch==" + pins["torch"] in required
    assert "huggingface_hub==" + pins["huggingface-hub"] in required
    # Another lock (the image's copy of one) decides, not what this process has installed.
    other = tmp_path / "trainer.txt"
    other.write_text("torch==9.9.9 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    moved = pip_requirements(other)
    assert "torch==9.9.9" in moved
    assert f"mlflow=={importlib.metadata.version('mlflow')}" in moved  # not in that lock
