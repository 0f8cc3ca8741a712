"""What `make images` built, and how the pipeline names it: images/built.json.

`images/build.sh` writes each image's tag reference and local image id; pushing adds the
registry digest. A cluster must run exactly what was built and tested, so `uicap compile
--images` names each image by that digest (`name@sha256:...`) and refuses a file that was
never pushed: a tag can move, and a local image id means nothing to a registry. A local
containerized run (`uicap run --runner docker`) runs the tags and checks that they still
point at the recorded ids.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_IMAGES_FILE = Path("images/built.json")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class ImageRefsError(ValueError):
    """images/built.json is missing, malformed, or does not name what is asked of it."""


class BuiltImage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str  # registry/name:tag, as built
    id: str = Field(pattern=DIGEST.pattern)  # the local image id (config digest)
    size_bytes: int
    base: str
    build_seconds: int
    cuda_kernels: Literal["build", "skip"] | None = None
    # The manifest digest the registry answered with on push; None until pushed.
    registry_digest: str | None = Field(None, pattern=DIGEST.pattern)

    @property
    def name(self) -> str:
        """The reference without its tag."""
        head, _, tail = self.reference.rpartition(":")
        return head if head and "/" not in tail else self.reference

    def by_digest(self) -> str:
        """`name@sha256:...`: what a cluster pulls, immutable."""
        if self.registry_digest is None:
            raise ImageRefsError(
                f"{self.reference} has no registry digest: push it first (`make push`), so "
                "the cluster pulls exactly the image that was built"
            )
        return f"{self.name}@{self.registry_digest}"


class BuiltImages(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runtime: BuiltImage
    trainer: BuiltImage


def read_images(path: Path | str = DEFAULT_IMAGES_FILE) -> BuiltImages:
    path = Path(path)
    if not path.is_file():
        raise ImageRefsError(f"{path} does not exist: build the images first (`make images`)")
    try:
        return BuiltImages.model_validate_json(path.read_text())
    except ValidationError as error:
        raise ImageRefsError(f"{path} is not what `make images` writes: {error}") from None


def write_images(images: BuiltImages, path: Path | str) -> None:
    Path(path).write_text(json.dumps(images.model_dump(), indent=2) + "\n")


def digest_overrides(images: BuiltImages) -> list[str]:
    """Settings overrides that put the gke profile's steps on the pushed images."""
    return [
        f"kubernetes.runtime_image={images.runtime.by_digest()}",
        f"kubernetes.trainer_image={images.trainer.by_digest()}",
    ]


def push_problems(images: BuiltImages) -> list[str]:
    """Why these images must not reach a cluster: a trainer without its CUDA kernels (slow
    reference code on the H100s) or an image on a local stand-in base."""
    problems = []
    if images.trainer.cuda_kernels != "build":
        problems.append(
            f"{images.trainer.reference} was built with CUDA_KERNELS={images.trainer.cuda_kernels}"
        )
    for image in (images.runtime, images.trainer):
        if image.base.startswith("localhost/"):
            problems.append(f"{image.reference} is built on the local base {image.base}")
    return problems


def push(path: Path, engine: str, *, allow_local: bool = False) -> BuiltImages:
    """Push both images and record the digests the registry answered with."""
    images = read_images(path)
    problems = push_problems(images)
    if problems and not allow_local:
        raise ImageRefsError(
            "not pushing a local build to the registry the cluster pulls from: "
            + "; ".join(problems)
            + ". Build with `make images IMAGE_BASE=official`, or push anyway with "
            "--allow-local"
        )
    updated = {}
    for role in ("runtime", "trainer"):
        image: BuiltImage = getattr(images, role)
        found = _inspect(engine, image.reference, "{{.Id}}").removeprefix("sha256:")
        if found != image.id.removeprefix("sha256:"):
            raise ImageRefsError(
                f"{image.reference} is now image {found[:19]}, not the {image.id[:19]} "
                f"that {path} records: rebuild with `make images`"
            )
        digest = _push(engine, image, path.with_name(f".{role}.digest"))
        updated[role] = image.model_copy(update={"registry_digest": digest})
        print(f"pushed {image.reference} as {image.name}@{digest}")
    pushed = BuiltImages(**updated)
    write_images(pushed, path)
    return pushed


def _inspect(engine: str, reference: str, template: str) -> str:
    return subprocess.run(
        [engine, "image", "inspect", "--format", template, reference],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _push(engine: str, image: BuiltImage, digest_file: Path) -> str:
    """Push, and return the manifest digest the registry holds for the tag: podman writes
    it to --digestfile; docker records it among the image's repository digests."""
    if Path(engine).name == "podman":
        try:
            subprocess.run(
                [engine, "push", "--digestfile", str(digest_file), image.reference], check=True
            )
            return digest_file.read_text().strip()
        finally:
            digest_file.unlink(missing_ok=True)
    subprocess.run([engine, "push", image.reference], check=True)
    found = _inspect(engine, image.reference, "{{range .RepoDigests}}{{println .}}{{end}}")
    for line in found.splitlines():
        name, _, digest = line.strip().partition("@")
        if name == image.name and DIGEST.match(digest):
            return digest
    raise ImageRefsError(f"{engine} recorded no registry digest for {image.reference}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.image_refs")
    parser.add_argument("command", choices=["push"])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES_FILE)
    parser.add_argument("--engine", default="podman")
    parser.add_argument("--allow-local", action="store_true", help="push a local build too")
    args = parser.parse_args(argv)
    try:
        push(args.images, args.engine, allow_local=args.allow_local)
    except (ImageRefsError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
