"""Steps inside the images `make images` built, run by kfp.local's DockerRunner on podman.

A raising component must fail its task (kfp 2.17's own DockerRunner often reports it as a
success), a passing one runs as the image's non-root user, and the whole local pipeline
runs with every step in its image. These need the images: `.ci/run` builds them and sets
UICAP_REQUIRE_IMAGES=1, so in CI a missing image fails here instead of skipping.

No `from __future__ import annotations`: KFP reads the components' annotations as objects.
"""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kfp import dsl, local

from pipelines.container_runner import (
    IMAGE_UID,
    ContainerRan,
    docker_runner,
    engine_socket,
    group_writable_umask,
    honest_docker_tasks,
    share_with_image_user,
)
from pipelines.image_refs import BuiltImages, ImageRefsError, read_images

REPO = Path(__file__).resolve().parents[1]
IMAGES_FILE = REPO / "images" / "built.json"


@pytest.fixture(scope="module")
def images() -> BuiltImages:
    try:
        return read_images(IMAGES_FILE)
    except ImageRefsError as error:
        if os.environ.get("UICAP_REQUIRE_IMAGES") == "1":
            pytest.fail(str(error))
        pytest.skip(f"{error} (CI builds them and sets UICAP_REQUIRE_IMAGES=1)")


@pytest.fixture
def in_containers(tmp_path: Path) -> Iterator[tuple[Path, list[ContainerRan]]]:
    """kfp.local set up as `uicap run --runner docker` sets it up, in a fresh folder."""
    work = tmp_path / "work"
    work.mkdir()
    ran: list[ContainerRan] = []
    with engine_socket(tmp_path / "engine"):
        group = share_with_image_user(work)
        with group_writable_umask(), honest_docker_tasks(work, ran.append, group=group):
            local.init(
                runner=docker_runner(), pipeline_root=str(work / "root"), raise_on_error=True
            )
            yield work, ran


def on_image(image: str, function: Callable[..., str]) -> Callable[..., dsl.PipelineTask]:
    """A lightweight component declared on `image`, with nothing installed at run time."""
    return dsl.component(base_image=image, install_kfp_package=False)(function)


def raises(message: str) -> str:
    raise RuntimeError(message)


def who_am_i(word: str) -> str:
    import os

    import components

    return f"{word} {os.getuid()} {os.path.dirname(components.__file__)}"


def test_a_component_that_raises_in_its_container_fails_the_task(
    images: BuiltImages,
    in_containers: tuple[Path, list[ContainerRan]],
    capfd: pytest.CaptureFixture,
) -> None:
    _, ran = in_containers
    component = on_image(images.runtime.reference, raises)
    with pytest.raises(RuntimeError, match="raises"):
        component(message="the step broke on purpose")
    (container,) = ran
    assert container.exit_code == 1
    assert container.image_id == images.runtime.id
    assert "RuntimeError: the step broke on purpose" in capfd.readouterr().out


def test_a_component_runs_as_the_image_user_with_the_installed_package(
    images: BuiltImages, in_containers: tuple[Path, list[ContainerRan]]
) -> None:
    _, ran = in_containers
    task = on_image(images.trainer.reference, who_am_i)(word="hello")
    word, uid, package = task.output.split()
    assert (word, int(uid)) == ("hello", IMAGE_UID)
    assert package.startswith("/opt/venv/"), "uicap comes from the image, not the checkout"
    assert [(c.image, c.image_id, c.exit_code) for c in ran] == [
        (images.trainer.reference, images.trainer.id, 0)
    ]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_the_local_pipeline_runs_with_every_step_in_its_image(
    images: BuiltImages, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    env = {**os.environ, "TMPDIR": str(tmp_path), "MLFLOW_DISABLE_TELEMETRY": "true"}
    # A short schedule: this proves the wiring, not the learning (the subprocess run does).
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pipelines.cli", "run", "--runner", "docker"),
            *("--images", str(IMAGES_FILE), "--workdir", str(work)),
            *("--set", "train.schedule.epochs=1"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "gate decision" in run.stdout
    (steps_file,) = work.glob("runs/*/logs/steps.json")
    steps = {row["step"]: row for row in json.loads(steps_file.read_text())}
    trainer_steps = {"train", "evaluate"}
    assert trainer_steps <= set(steps)
    for name, row in steps.items():
        assert row["status"] == "succeeded", row
        if name == "general-holdout":  # an importer: kfp.local runs no container for it
            assert row["image"] is None
            continue
        expected = images.trainer if name in trainer_steps else images.runtime
        assert (row["image"], row["image_id"]) == (expected.reference, expected.id), name


def test_a_run_refuses_an_image_rebuilt_behind_built_json(
    images: BuiltImages, tmp_path: Path
) -> None:
    from pipelines.container_runner import ContainerRunError, check_built

    stale = images.model_copy(
        update={"trainer": images.trainer.model_copy(update={"id": "sha256:" + "0" * 64})}
    )
    with engine_socket(tmp_path / "engine"):
        check_built(images)
        with pytest.raises(ContainerRunError, match="rebuild with `make images`"):
            check_built(stale)
