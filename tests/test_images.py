"""The Dockerfiles in images/, checked without a Docker engine.

Each rule is a function from a Dockerfile's text to the problems it finds, so that the
same rule runs on the real files (no problems) and on a small broken one (the problem
named). The rules: what COPY sends exists and passes .dockerignore; the final user is a
numeric non-root uid; ENTRYPOINT + CMD name a real `uicap` command and its options;
every version argument has a default; torch is only ever installed pinned.
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from dockerfile_parse import DockerfileParser

from pipelines.cli import app
from pipelines.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = {
    "runtime": REPO / "images" / "runtime.Dockerfile",
    "trainer": REPO / "images" / "trainer.Dockerfile",
}
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass(frozen=True)
class Instruction:
    name: str
    value: str
    line: int


def instructions(text: str) -> list[Instruction]:
    parser = DockerfileParser(fileobj=io.BytesIO(text.encode()), env_replace=False)
    return [
        Instruction(item["instruction"], item["value"], item["startline"] + 1)
        for item in parser.structure
        if item["instruction"] != "COMMENT"
    ]


def stages(text: str) -> tuple[list[Instruction], list[list[Instruction]]]:
    """(the ARGs before the first FROM, then each stage starting with its FROM)."""
    preamble: list[Instruction] = []
    found: list[list[Instruction]] = []
    for ins in instructions(text):
        if ins.name == "FROM":
            found.append([ins])
        elif found:
            found[-1].append(ins)
        else:
            preamble.append(ins)
    return preamble, found


def arg_defaults(args: list[Instruction]) -> dict[str, str | None]:
    declared: dict[str, str | None] = {}
    for ins in args:
        if ins.name == "ARG":
            name, sep, default = ins.value.partition("=")
            declared[name.strip()] = default.strip().strip("\"'") if sep else None
    return declared


def substitute(value: str, variables: dict[str, str | None]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: variables.get(m.group(1)) or m.group(0), value)


def referenced(value: str) -> set[str]:
    return set(re.findall(r"\$\{?(\w+)\}?", value))


# --- COPY sources -----------------------------------------------------------------


def copy_sources(text: str) -> list[tuple[int, str]]:
    """(line, source) of every COPY/ADD from the build context; --from= copies excluded."""
    sources: list[tuple[int, str]] = []
    for ins in instructions(text):
        if ins.name not in {"COPY", "ADD"}:
            continue
        value = ins.value.strip()
        flags = []
        while value.startswith("--"):
            flag, _, value = value.partition(" ")
            flags.append(flag)
            value = value.strip()
        if any(flag.startswith("--from=") for flag in flags):
            continue
        tokens = json.loads(value) if value.startswith("[") else shlex.split(value)
        sources.extend((ins.line, source) for source in tokens[:-1] if "://" not in source)
    return sources


def missing_copy_sources(text: str, context: Path) -> list[str]:
    return [
        f"line {line}: COPY source {source!r} is not in the build context"
        for line, source in copy_sources(text)
        if not any(context.glob(source.strip("/")))
    ]


def dockerignore_rules(dockerignore: str) -> list[tuple[bool, re.Pattern[str]]]:
    """.dockerignore as (re-include?, pattern): the last rule that matches a path decides,
    and a rule that matches a folder matches everything under it."""
    rules = []
    for raw in dockerignore.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((include, re.compile(regex + "(?:/.*)?$")))
    return rules


def is_ignored(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    ignored = False
    for include, pattern in rules:
        if pattern.match(path):
            ignored = not include
    return ignored


def ignored_copy_sources(text: str, dockerignore: str, context: Path) -> list[str]:
    """COPY sources (and, for folders, the Python files in them) that .dockerignore drops."""
    rules = dockerignore_rules(dockerignore)
    problems = []
    for line, source in copy_sources(text):
        for match in context.glob(source.strip("/")):
            wanted = [match] + (sorted(match.rglob("*.py")) if match.is_dir() else [])
            dropped = [p for p in wanted if is_ignored(p.relative_to(context).as_posix(), rules)]
            if dropped:
                shown = dropped[0].relative_to(context).as_posix()
                problems.append(f"line {line}: .dockerignore drops {shown!r} that COPY sends")
    return problems


# --- the user -----------------------------------------------------------------------


def user_problems(text: str) -> list[str]:
    final = stages(text)[1][-1]
    users = [ins for ins in final if ins.name == "USER"]
    if not users:
        return ["the final stage sets no USER, so the image runs as root"]
    user = users[-1].value.split(":")[0].strip()
    if not user.isdigit():
        return [f"line {users[-1].line}: USER {user!r} is not numeric; runAsNonRoot needs a uid"]
    if int(user) == 0:
        return [f"line {users[-1].line}: USER is uid 0 (root)"]
    return []


# --- ENTRYPOINT + CMD ---------------------------------------------------------------


def exec_form(ins: Instruction) -> list[str] | None:
    try:
        argv = json.loads(ins.value)
    except json.JSONDecodeError:
        return None
    return argv if isinstance(argv, list) and all(isinstance(a, str) for a in argv) else None


def container_argv(text: str) -> tuple[list[str], list[str]]:
    """(the argv the container starts with, problems with how it is written)."""
    final = stages(text)[1][-1]
    argv: list[str] = []
    problems = []
    for name in ("ENTRYPOINT", "CMD"):
        found = [ins for ins in final if ins.name == name]
        if not found:
            continue
        form = exec_form(found[-1])
        if form is None:
            problems.append(f"line {found[-1].line}: {name} is not in exec (JSON) form")
        else:
            argv += form
    return argv, problems


def command_problems(argv: list[str], cli: Any) -> list[str]:
    """Walk `uicap <group> <command> --option` through the real click tree typer builds."""
    if not argv or argv[0] != "uicap":
        return [f"the container starts {argv[:1]}, not the uicap console script"]
    command, path = cli, ["uicap"]
    tokens = argv[1:]
    while tokens and hasattr(command, "list_commands"):  # a group
        token = tokens.pop(0)
        if token.startswith("-"):
            continue
        sub = command.get_command(command.context_class(command), token)
        if sub is None:
            return [f"{' '.join(path)} has no command {token!r}"]
        command, path = sub, [*path, token]
    params = command.get_params(command.context_class(command))
    known = {opt for p in params for opt in (*p.opts, *p.secondary_opts)}
    return [
        f"{' '.join(path)} has no option {token.split('=')[0]!r}"
        for token in tokens
        if token.startswith("--") and token.split("=")[0] not in known
    ]


def entrypoint_problems(text: str) -> list[str]:
    argv, problems = container_argv(text)
    return problems + command_problems(argv, typer.main.get_command(app))


# --- version pins -------------------------------------------------------------------


def is_version_arg(name: str) -> bool:
    return name.endswith(("_VERSION", "_IMAGE"))


def pin_problems(text: str) -> list[str]:
    preamble, found = stages(text)
    global_args = arg_defaults(preamble)
    problems = [
        f"ARG {name} has no default: builds would not be reproducible"
        for name, default in global_args.items()
        if is_version_arg(name) and not default
    ]
    stage_names = set()
    for stage in found:
        origin = stage[0]
        image = substitute(origin.value.split()[0], global_args)
        problems += [
            f"line {origin.line}: FROM uses ${name}, which no global ARG gives a default"
            for name in referenced(origin.value)
            if not global_args.get(name)
        ]
        if image not in stage_names and "@sha256:" not in image:
            tag = image.rpartition(":")[2] if ":" in image.rpartition("/")[2] else ""
            if not tag or tag == "latest":
                problems.append(f"line {origin.line}: base image {image!r} is not pinned")
        words = origin.value.split()
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
        args = arg_defaults(stage)
        problems += [
            f"line {ins.line}: ARG {name} has no default"
            for ins in stage
            if ins.name == "ARG"
            for name in [ins.value.partition("=")[0]]
            if is_version_arg(name) and not args.get(name)
        ]
        for ins in stage:
            if ins.name in {"RUN", "ENV"}:
                problems += [
                    f"line {ins.line}: ${name} is used but not declared by an ARG in this stage"
                    for name in sorted(referenced(ins.value))
                    if is_version_arg(name) and name not in args
                ]
    return problems


# --- the lock -----------------------------------------------------------------------

PIP_OPTIONS_WITH_VALUE = {
    "-c",
    "--constraint",
    "-r",
    "--requirement",
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "-t",
    "--target",
    "--prefix",
    "--root",
}
LOCKS_IN_IMAGE = "/opt/uicap/locks/"


def pip_installs(run: str) -> list[list[str]]:
    """The argument lists of every `pip install` in a RUN command line."""
    lexer = shlex.shlex(run, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token in {"&&", "||", ";", "|", "&"}:
            commands.append([])
        else:
            commands[-1].append(token)
    installs = []
    for words in commands:
        for i, word in enumerate(words[:-1]):
            if word.rsplit("/", 1)[-1] in {"pip", "pip3"} and words[i + 1] == "install":
                installs.append(words[i + 2 :])
                break
    return installs


def lock_problems(text: str) -> list[str]:
    """Every `pip install` takes a lock with --require-hashes, or installs a local source
    with --no-deps (uicap itself): nothing is resolved at build time."""
    problems = []
    for ins in instructions(text):
        if ins.name != "RUN":
            continue
        for args in pip_installs(ins.value):
            locks, requirements, skip = [], [], None
            for arg in args:
                if skip is not None:
                    if skip in {"-r", "--requirement"}:
                        locks.append(arg)
                    skip = None
                elif arg in PIP_OPTIONS_WITH_VALUE:
                    skip = arg
                elif not arg.startswith("-"):
                    requirements.append(arg)
            shown = " ".join(args)
            if locks:
                if "--require-hashes" not in args:
                    problems.append(f"line {ins.line}: `pip install {shown}` checks no hashes")
                problems += [
                    f"line {ins.line}: {lock!r} is not one of the image's locks"
                    for lock in locks
                    if not lock.startswith(LOCKS_IN_IMAGE)
                ]
            if requirements and (
                "--no-deps" not in args or any(not r.startswith(("/", ".")) for r in requirements)
            ):
                problems.append(f"line {ins.line}: `pip install {shown}` resolves outside the lock")
            if not locks and not requirements:
                problems.append(f"line {ins.line}: `pip install {shown}` installs nothing known")
    return problems


def base_problems(text: str) -> list[str]:
    """The default base is an official image pinned by digest (a tag can move)."""
    preamble, _ = stages(text)
    base = arg_defaults(preamble).get("BASE_IMAGE") or ""
    if not re.fullmatch(r"[\w./-]+:[\w.-]+@sha256:[0-9a-f]{64}", base):
        return [f"BASE_IMAGE defaults to {base!r}, not name:tag@sha256:<digest>"]
    return []


# --- the real Dockerfiles -------------------------------------------------------------


@pytest.fixture(params=sorted(DOCKERFILES), ids=str)
def dockerfile(request: pytest.FixtureRequest) -> str:
    return DOCKERFILES[request.param].read_text()


def test_copied_files_exist_and_reach_the_builder(dockerfile: str) -> None:
    assert copy_sources(dockerfile), "the image installs the package, so it must COPY it"
    assert missing_copy_sources(dockerfile, REPO) == []
    assert ignored_copy_sources(dockerfile, DOCKERIGNORE.read_text(), REPO) == []


def test_the_image_runs_as_a_numeric_non_root_user(dockerfile: str) -> None:
    assert user_problems(dockerfile) == []


def test_the_entrypoint_is_a_real_uicap_command(dockerfile: str) -> None:
    assert entrypoint_problems(dockerfile) == []


def test_every_version_is_pinned(dockerfile: str) -> None:
    assert pin_problems(dockerfile) == []


def test_every_install_comes_from_the_lock(dockerfile: str) -> None:
    assert lock_problems(dockerfile) == []


def test_the_default_base_is_pinned_by_digest_and_shared(dockerfile: str) -> None:
    assert base_problems(dockerfile) == []
    runtime, trainer = (arg_defaults(stages(DOCKERFILES[n].read_text())[0]) for n in DOCKERFILES)
    assert runtime["BASE_IMAGE"] == trainer["BASE_IMAGE"]


def test_the_runtime_image_holds_no_torch_and_the_trainer_the_tested_one() -> None:
    locks = REPO / "images" / "locks"
    runtime = (locks / "runtime.txt").read_text()
    trainer = (locks / "trainer.txt").read_text()
    assert not re.search(r"^(torch|torchvision|nvidia-[\w-]+)==", runtime, re.MULTILINE)
    for package in ("torch", "torchvision"):
        tested = importlib.metadata.version(package).split("+")[0]
        assert f"\n{package}=={tested} " in trainer, f"the tests ran on {package} {tested}"


def test_make_images_tags_both_as_the_gke_profile_runs_them() -> None:
    make = shutil.which("make")
    # `make test` runs this suite, so make is there; a bare `pytest` without it fails here.
    assert make is not None, "make is not on PATH: install GNU make (apt-get install make)"
    # The Makefile's defaults: none of its `?=` variables overridden by the environment or
    # by a `make test VAR=...` that runs pytest.
    defaults = re.findall(r"^(?:export )?(\w+) \?=", (REPO / "Makefile").read_text(), re.MULTILINE)
    dropped = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", *defaults}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    dry_run = subprocess.run(
        [make, "-n", "images"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    ).stdout
    build = next(line for line in dry_run.replace("\\\n", " ").splitlines() if "build.sh" in line)
    assigned = dict(word.split("=", 1) for word in shlex.split(build) if "=" in word)
    kube = load_settings("gke").kubernetes
    assert kube is not None
    for image, pinned in (("runtime", kube.runtime_image), ("trainer", kube.trainer_image)):
        assert f"{assigned['REGISTRY']}/{image}:{assigned['IMAGE_TAG']}" == pinned
    # Local bases build no CUDA kernels (hours on a laptop); official ones do.
    assert assigned["IMAGE_BASE"] == "local" and assigned["CUDA_KERNELS"] == "skip"


# --- each rule catches what it is for -------------------------------------------------

GOOD_TAIL = 'USER 10001:10001\nENTRYPOINT ["uicap"]\nCMD ["--help"]\n'


def test_a_copy_of_a_missing_file_is_caught(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    text = (
        "FROM python:3.11-slim AS build\nCOPY pyproject.toml no-such-dir/ /src/\n"
        "FROM python:3.11-slim\nCOPY --from=build /opt/venv /opt/venv\n" + GOOD_TAIL
    )
    assert missing_copy_sources(text, tmp_path) == [
        "line 2: COPY source 'no-such-dir/' is not in the build context"
    ]


def test_a_dockerignore_that_drops_copied_sources_is_caught() -> None:
    text = DOCKERFILES["runtime"].read_text()
    kept = "*\n!pyproject.toml\n!README.md\n!components/\n!images/locks/*.txt\n!images/*.sh\n"
    problems = ignored_copy_sources(text, kept, REPO)
    assert problems and all("pipelines" in p for p in problems)
    problems = ignored_copy_sources(text, "**/*.py\n", REPO)
    assert any("components/" in p for p in problems)


@pytest.mark.parametrize(
    ("tail", "problem"),
    [
        ("", "sets no USER"),
        ("USER root\n", "not numeric"),
        ("USER 0:0\n", "uid 0"),
    ],
)
def test_a_root_or_unverifiable_user_is_caught(tail: str, problem: str) -> None:
    text = "FROM python:3.11-slim AS build\nUSER 10001\nFROM python:3.11-slim\n" + tail
    (found,) = user_problems(text)
    assert problem in found


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ('ENTRYPOINT ["uicap", "no-such-command"]', "has no command 'no-such-command'"),
        ('ENTRYPOINT ["uicap", "models", "nope"]', "uicap models has no command 'nope'"),
        ('ENTRYPOINT ["uicap", "train", "--no-such-flag"]', "no option '--no-such-flag'"),
        ('ENTRYPOINT ["python", "-m", "pipelines.cli"]', "not the uicap console script"),
        ("ENTRYPOINT uicap train", "not in exec (JSON) form"),
    ],
)
def test_an_entrypoint_that_is_no_uicap_command_is_caught(entry: str, problem: str) -> None:
    problems = entrypoint_problems(f"FROM python:3.11-slim\n{entry}\n")
    assert any(problem in p for p in problems), problems


def test_real_nested_commands_and_options_resolve() -> None:
    text = 'FROM python:3.11-slim\nENTRYPOINT ["uicap"]\nCMD ["models", "list", "--help"]\n'
    assert entrypoint_problems(text) == []
    text = 'FROM python:3.11-slim\nENTRYPOINT ["uicap", "train"]\nCMD ["--no-resume"]\n'
    assert entrypoint_problems(text) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n", "ARG BASE_IMAGE has no default"),
        ("FROM python:latest\n", "'python:latest' is not pinned"),
        ("FROM python\n", "'python' is not pinned"),
        ("FROM python:3.11-slim\nARG DEEPSPEED_VERSION\n", "ARG DEEPSPEED_VERSION has no default"),
        (
            "ARG FLA_VERSION=0.6.0\nFROM python:3.11-slim\n"
            'RUN pip install -c c.txt "flash-linear-attention==${FLA_VERSION}"\n',
            "$FLA_VERSION is used but not declared",
        ),
    ],
)
def test_an_unpinned_version_is_caught(text: str, problem: str) -> None:
    problems = pin_problems(text)
    assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(
    ("run", "problem"),
    [
        ("pip install torch torchvision", "resolves outside the lock"),
        ("pip install -r /opt/uicap/locks/trainer.txt", "checks no hashes"),
        ("pip install --require-hashes -r requirements.txt", "not one of the image's locks"),
        ("pip install /src", "resolves outside the lock"),
        ("pip install --no-deps deepspeed==0.19.8", "resolves outside the lock"),
    ],
)
def test_an_install_outside_the_lock_is_caught(run: str, problem: str) -> None:
    problems = lock_problems(f"FROM python:3.11-slim\nRUN {run}\n")
    assert any(problem in p for p in problems), problems


def test_locked_and_local_installs_pass() -> None:
    text = (
        "FROM python:3.11-slim\n"
        "RUN pip install --require-hashes -r /opt/uicap/locks/runtime.txt\n"
        "RUN pip install --no-deps --no-build-isolation /opt/uicap/src && pip check\n"
    )
    assert lock_problems(text) == []


@pytest.mark.parametrize(
    "base",
    ["python:3.11-slim-bookworm", "python@sha256:" + "0" * 64, "python:3.11@sha256:abc"],
)
def test_a_base_without_a_digest_is_caught(base: str) -> None:
    assert base_problems(f"ARG BASE_IMAGE={base}\nFROM ${{BASE_IMAGE}}\n")
