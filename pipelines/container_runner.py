"""kfp.local's DockerRunner made trustworthy: every step in its image, honest exit codes.

`uicap run --runner docker` runs the same pipeline as the default run, each task in the
image the pipeline names (the runtime image for CPU steps, the trainer image for train
and evaluate), through the Docker SDK against podman's Docker-compatible socket (started
here for the run) or the dockerd that `DOCKER_HOST` names.

Four things kfp 2.17's DockerRunner gets wrong or leaves out, fixed here:
- it starts containers with `auto_remove` and reads the exit code after the logs end,
  by which time the container is often gone: it then reports SUCCESS. Ours keeps the
  container until `wait()` has its exit code, then removes it;
- it mounts only the pipeline root, while the steps also read and write the work folder
  (the dataset, the base model, MLflow's SQLite file, the reuse store): ours mounts the
  work folder at the same path, writable by the images' non-root user;
- it passes the task's command as Docker's `command`, which Docker appends to the
  image's ENTRYPOINT (`uicap` in ours); a cluster replaces the entrypoint with it, and so
  does ours;
- it pulls an image it cannot find; ours never pulls, and says to run `make images`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.image_refs import BuiltImages

# The user both images run as (images/*.Dockerfile).
IMAGE_UID = 10001
REPO_CONTAINERS_CONF = Path(__file__).resolve().parents[1] / "images" / "podman" / "containers.conf"
SOCKET_WAIT_SECONDS = 30.0
IDLE_SECONDS = 300


class ContainerRunError(RuntimeError):
    """The container engine cannot be reached, or an image is not there."""


@dataclass(frozen=True)
class ContainerRan:
    """The image a task's container ran: the reference the pipeline named and its id."""

    image: str
    image_id: str
    exit_code: int


ContainerHook = Callable[[ContainerRan], None]


@contextlib.contextmanager
def engine_socket(folder: Path) -> Iterator[str]:
    """The Docker API to talk to: `DOCKER_HOST` when set, else podman's, served from
    `folder` for as long as the block runs."""
    existing = os.environ.get("DOCKER_HOST")
    if existing:
        yield existing
        return
    if os.geteuid() != 0:
        # Rootless podman maps the images' uid and this user's group to subordinate ids,
        # so the steps could not write the work folder; refuse before any step runs.
        raise ContainerRunError(
            "containerized runs use rootful podman: run as root (e.g. `sudo make "
            "run-containers`), or point DOCKER_HOST at a Docker engine this user may use"
        )
    podman = shutil.which("podman")
    if podman is None:
        raise ContainerRunError(
            "neither DOCKER_HOST nor podman is there: install podman (`make podman`) or point "
            "DOCKER_HOST at a Docker engine"
        )
    folder.mkdir(parents=True, exist_ok=True)
    # A Unix socket path must stay under 108 bytes; a deep work folder would not.
    socket_dir = Path(tempfile.mkdtemp(prefix="uicap-podman-", dir="/tmp"))
    socket = socket_dir / "podman.sock"
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env and REPO_CONTAINERS_CONF.is_file():
        env["CONTAINERS_CONF"] = str(REPO_CONTAINERS_CONF)
    log = (folder / "podman-service.log").open("ab")
    # The service is stopped below; should this process be killed instead, it stops itself
    # once idle for IDLE_SECONDS (a task's streamed log keeps it busy while it runs).
    service = subprocess.Popen(
        [podman, "system", "service", f"--time={IDLE_SECONDS}", f"unix://{socket}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    host = f"unix://{socket}"
    try:
        _wait_for_socket(socket, service, folder / "podman-service.log")
        os.environ["DOCKER_HOST"] = host
        yield host
    finally:
        os.environ.pop("DOCKER_HOST", None)
        service.terminate()
        try:
            service.wait(timeout=10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
        log.close()
        shutil.rmtree(socket_dir, ignore_errors=True)


def _wait_for_socket(socket: Path, service: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + SOCKET_WAIT_SECONDS
    while not socket.exists():
        if service.poll() is not None:
            raise ContainerRunError(
                f"`podman system service` exited with {service.returncode}; see {log}"
            )
        if time.monotonic() > deadline:
            raise ContainerRunError(f"podman's socket did not appear in {SOCKET_WAIT_SECONDS}s")
        time.sleep(0.1)


def share_with_image_user(folder: Path) -> int:
    """Let the images' user (uid 10001) write the work folder; returns the group to add.

    The containers run as the image's non-root user with this process's group added,
    and everything in the folder is made group-writable, with set-group-id folders so
    what the steps create stays in that group. kfp.local keeps creating folders on this
    side during the run, so `group_writable_umask` covers those too. Nothing is chowned:
    the folder stays the caller's, and what the steps wrote stays removable by them."""
    me, group = os.geteuid(), os.getegid()
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue
        info = path.stat()
        if me != 0 and info.st_uid != me:
            continue
        extra = stat.S_IWGRP | stat.S_IRGRP
        if stat.S_ISDIR(info.st_mode):
            extra |= stat.S_IXGRP | stat.S_ISGID
        os.chmod(path, stat.S_IMODE(info.st_mode) | extra)
    return group


@contextlib.contextmanager
def group_writable_umask() -> Iterator[None]:
    """New files and folders of this process are group-writable for the block."""
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def run_task_container(
    client: Any,
    image: str,
    command: list[str],
    volumes: dict[str, Any],
    *,
    mounts: dict[str, Any],
    group: int,
    on_container: ContainerHook,
    names: Mapping[str, str],
    **run_args: Any,
) -> int:
    """Run one task's container to its end and return its real exit code; `names` gives
    the reference to report for an image the pipeline names by id."""
    import docker

    try:
        found = client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ContainerRunError(
            f"image {image} is not in the local store: build it with `make images`"
        ) from None
    # As on Kubernetes, the task's command replaces the image's ENTRYPOINT (`uicap`):
    # Docker would append it to the entrypoint instead. The shell only sets the umask, so
    # what the step writes stays group-writable (see share_with_image_user).
    container = client.containers.run(
        image=image,
        entrypoint=["/bin/sh", "-c", 'umask 002 && exec "$0" "$@"', *command],
        command=[],
        group_add=[str(group)],
        detach=True,
        stdout=True,
        stderr=True,
        volumes={**mounts, **volumes},
        auto_remove=False,
        **run_args,
    )
    try:
        for line in container.logs(stream=True, follow=True):
            print(line.decode(errors="replace"), end="")
        exit_code = int(container.wait()["StatusCode"])
    finally:
        with contextlib.suppress(docker.errors.APIError):
            container.remove(force=True)
    reference = names.get(image, image)
    on_container(ContainerRan(reference, found.id, exit_code))
    if exit_code != 0:
        print(f"container of {reference} exited with {exit_code}")
    return exit_code


@contextlib.contextmanager
def honest_docker_tasks(
    workdir: Path,
    on_container: ContainerHook,
    *,
    group: int,
    read_only: Sequence[Path] = (),
    names: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Route kfp.local's DockerRunner tasks through `run_task_container` for the block.

    The work folder is mounted at its own path, and `read_only` folders (a dataset
    outside it) likewise but read-only. kfp's task handler calls its module's
    `run_docker_container` by name; that one function is replaced, so everything else
    (env, placeholders, outputs) stays kfp's."""
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container

    def run_docker_container(
        client: Any, image: str, command: list[str], volumes: dict[str, Any], **run_args: Any
    ) -> int:
        # The engine would create a missing mount source itself, as root and not writable
        # by the images' user (kfp.local leaves the pipeline root to it).
        for source in volumes:
            if not os.path.exists(source):
                os.makedirs(source)
                share_with_image_user(Path(source))
        # kfp adds SELinux's shared label (",z") to its mounts where SELinux is on: ours too.
        label = ",z" if any(",z" in v.get("mode", "") for v in volumes.values()) else ""
        mounts = {str(workdir): {"bind": str(workdir), "mode": "rw" + label}}
        for path in read_only:
            mounts[str(path)] = {"bind": str(path), "mode": "ro" + label}
        return run_task_container(
            client,
            image,
            command,
            volumes,
            mounts=mounts,
            group=group,
            on_container=on_container,
            names=names or {},
            **run_args,
        )

    docker_task_handler.run_docker_container = run_docker_container  # type: ignore[assignment]
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original  # type: ignore[assignment]


def docker_runner() -> Any:
    """kfp.local's DockerRunner as these steps need it: host networking (MLflow and the
    GCS emulator listen on loopback; build hosts often have no bridge egress)."""
    from kfp import local

    return local.DockerRunner(network_mode="host")


def check_built(images: BuiltImages) -> None:
    """Each tag still names the image `make images` recorded: a run never uses an image
    that was rebuilt (or pulled) behind images/built.json's back."""
    import docker

    client = docker.from_env()
    try:
        for role in ("runtime", "trainer"):
            built = getattr(images, role)
            try:
                found = client.images.get(built.reference).id
            except docker.errors.ImageNotFound:
                raise ContainerRunError(
                    f"the {role} image {built.reference} is not in the local store: build it "
                    "with `make images`"
                ) from None
            if found != built.id:
                raise ContainerRunError(
                    f"{built.reference} is now image {found[:19]}, not the {built.id[:19]} that "
                    "images/built.json records: rebuild with `make images`"
                )
    finally:
        client.close()
