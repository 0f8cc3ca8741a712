"""What `uicap run` shows while the pipeline runs, and where everything else goes.

kfp.local prints each task's executor input, outputs and log to stdout: about a
thousand lines a run, with the result at the bottom. Here each task is wrapped at the one
place kfp.local runs a leaf task (`kfp.local.orchestrator.task_executor
.execute_single_task`, which also answers cache hits), while `sys.stdout` and
`sys.stderr` feed one log file per step, `runs/<timestamp>/logs/<step>.log`. The
terminal gets one line as a step starts and one as it ends: its name, status, duration
and one figure read from the step's real outputs (counts, loss, CIDEr, version,
decision). On a terminal a live line shows the running step and its latest log line;
elsewhere (CI, `make run > log`) the same lines print plainly, with no control codes.
When a step fails, the last lines of its log follow, with the log's path. `--verbose`
keeps kfp.local's full stream on the terminal as well.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.text import Text

from components.evaluate.result import ROLES

LOGS_DIR = "logs"
STEPS_FILE = "steps.json"
# kfp.local's own lines that belong to no task: pipeline start and end, skipped tasks.
PIPELINE_LOG = "pipeline"
TAIL_LINES = 30
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
KFP_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
_NAME_WIDTH = 16


class StepLogs:
    """One log file per step; output goes to the step the writing thread is running.

    kfp.local runs tasks one after another (ParallelFor iterations in threads), so the
    running step is kept per thread. Lines from no step go to `pipeline.log`.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._files: dict[str, TextIO] = {}
        self._current: dict[int, str] = {}
        self._last: dict[str, str] = {}
        self._lock = threading.Lock()

    def path(self, step: str) -> Path:
        return self.folder / f"{step}.log"

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Send this thread's output to `name`'s log for the duration."""
        ident = threading.get_ident()
        previous = self._current.get(ident)
        self._current[ident] = name
        try:
            yield
        finally:
            if previous is None:
                self._current.pop(ident, None)
            else:
                self._current[ident] = previous

    def current(self) -> str | None:
        return self._current.get(threading.get_ident())

    def write(self, text: str) -> None:
        name = self.current() or PIPELINE_LOG
        clean = ANSI.sub("", text)
        with self._lock:
            handle = self._files.get(name)
            if handle is None:
                self.folder.mkdir(parents=True, exist_ok=True)
                handle = self._files[name] = self.path(name).open("a", encoding="utf-8")
            handle.write(clean)
            # Flushed at once: the tail of a failed step and the live line read the file.
            handle.flush()
            lines = [line.strip() for line in clean.replace("\r", "\n").splitlines()]
            # The live line shows words, not kfp.local's rules of dashes.
            lines = [line for line in lines if any(char.isalnum() for char in line)]
            if lines:
                self._last[name] = lines[-1]

    def last_line(self, name: str) -> str:
        return self._last.get(name, "")

    def tail(self, name: str, count: int = TAIL_LINES) -> list[str]:
        path = self.path(name)
        if not path.is_file():
            return []
        lines = path.read_text(encoding="utf-8", errors="replace").rstrip().splitlines()
        return [line.rstrip() for line in lines[-count:]]

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()


class _Capture(io.TextIOBase):
    """`sys.stdout` or `sys.stderr` while the pipeline runs: into the step logs, and on to
    the terminal too when `echo` is given (--verbose).

    A library may keep a reference to it (transformers' log handler does), so once
    closed it passes writes on to whatever the interpreter's stream is by then.
    """

    def __init__(self, logs: StepLogs, stream: str, echo: TextIO | None) -> None:
        super().__init__()
        self._logs = logs
        self._stream = stream
        self._echo = echo
        self._open = True

    def write(self, text: str) -> int:
        if self._open:
            self._logs.write(text)
            if self._echo is not None:
                self._echo.write(text)
        else:
            target = getattr(sys, self._stream)
            if target is not self:
                target.write(text)
        return len(text)

    def flush(self) -> None:
        if self._echo is not None and self._open:
            self._echo.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def release(self) -> None:
        self._open = False


@dataclass(frozen=True)
class StepResult:
    """One step as the terminal and `logs/steps.json` show it."""

    step: str
    status: str  # succeeded | cached | failed
    seconds: float
    figure: str | None
    log: str
    # The image the step's container ran (a containerized run): reference and id.
    image: str | None = None
    image_id: str | None = None


class RunDisplay:
    """The terminal view of one local run: step lines, a live line, failure tails."""

    def __init__(
        self, console: Console, records: Path, *, verbose: bool = False, live: bool | None = None
    ) -> None:
        self.console = console
        self.records = records
        self.logs = StepLogs(records / LOGS_DIR)
        self.verbose = verbose
        self.live = (console.is_terminal and not verbose) if live is None else live
        self.results: list[StepResult] = []
        self._cached: set[str] = set()
        self._running: str | None = None
        self._container: Any = None
        self._since = 0.0
        self._live: Any = None

    # --- what the terminal shows ---------------------------------------------------

    def started(self, step: str) -> None:
        line = Text(f"{_clock()} ")
        line.append(f"{step:<{_NAME_WIDTH}}", style="bold")
        line.append(" started", style="cyan")
        self._print(line)
        self._start_live(step)

    def ended(self, result: StepResult) -> None:
        self._stop_live()
        self.results.append(result)
        style = {"succeeded": "green", "cached": "blue"}.get(result.status, "bold red")
        line = Text(f"{_clock()} ")
        line.append(f"{result.step:<{_NAME_WIDTH}}", style="bold")
        line.append(f" {result.status:<9}", style=style)
        line.append(f" {_duration(result.seconds):>7}")
        if result.figure:
            line.append(f"  {result.figure}")
        self._print(line)
        if result.status == "failed":
            self.print_tail(result.step)

    def print_tail(self, step: str) -> None:
        """The log's path, then its last lines: the cause on screen, the rest a copy away."""
        lines = self.logs.tail(step)
        self._print(Text(f"  last {len(lines)} lines of {self.logs.path(step)}:", style="red"))
        for line in lines:
            self._print(Text(f"  | {line}"))

    def _print(self, text: Text) -> None:
        # Never wrapped: one log line stays one line, and paths stay whole for copying.
        self.console.print(text, soft_wrap=True, highlight=False)

    def _start_live(self, step: str) -> None:
        self._running, self._since = step, time.monotonic()
        if not self.live:
            return
        from rich.live import Live

        self._live = Live(
            get_renderable=self._live_view,
            console=self.console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
            refresh_per_second=4,
        )
        self._live.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
        self._running = None

    def _live_view(self) -> RenderableType:
        from rich.spinner import Spinner

        step = self._running or ""
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(step, style="bold")
        text.append(f" running {_duration(time.monotonic() - self._since)}", style="cyan")
        room = self.console.width - len(text) - 6  # the spinner and a margin
        last = self.logs.last_line(step)
        if last and room > 10:
            text.append(f"  {last[:room]}", style="dim")
        return Spinner("dots", text=text)

    # --- capturing the run -----------------------------------------------------------

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """Route this process's output and kfp.local's logging into the step logs, and
        wrap kfp.local's task runner so each task gets its lines."""
        out = _Capture(self.logs, "stdout", sys.stdout if self.verbose else None)
        err = _Capture(self.logs, "stderr", sys.stderr if self.verbose else None)
        root = logging.getLogger()
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter(KFP_FORMAT))
        watch = _CacheHits(self)
        level = root.level
        root.addHandler(handler)
        root.addFilter(watch)
        root.setLevel(logging.INFO)
        try:
            with (
                contextlib.redirect_stdout(out),
                contextlib.redirect_stderr(err),
                _wrap_task_runner(self._run_task),
            ):
                yield
        finally:
            self._stop_live()
            root.removeFilter(watch)
            root.removeHandler(handler)
            root.setLevel(level)
            out.release()
            err.release()
            self.logs.close()
            self.write_steps()

    @contextlib.contextmanager
    def quiet(self, name: str) -> Iterator[None]:
        """Work that prints no step lines unless it fails (the local assets): its output
        goes to `<name>.log`, with the live line on a terminal."""
        self._start_live(name)
        try:
            with self.logs.step(name):
                yield
        except BaseException:
            self._stop_live()
            if self.logs.path(name).is_file():
                self.print_tail(name)
            raise
        self._stop_live()

    def _run_task(self, run: Callable[[], Any], arguments: Mapping[str, Any]) -> Any:
        step = step_name(arguments["task_name"], arguments["task_spec"])
        self.started(step)
        self._container = None
        began = time.monotonic()
        outputs: Mapping[str, Any] = {}
        status = "failed"
        try:
            with self.logs.step(step):
                outputs, task_status = run()
            if getattr(task_status, "name", str(task_status)) == "SUCCESS":
                status = "cached" if step in self._cached else "succeeded"
            return outputs, task_status
        finally:
            figure = self._figure(step, outputs) if status != "failed" else None
            seconds = time.monotonic() - began
            ran = self._container
            self.ended(
                StepResult(
                    step,
                    status,
                    seconds,
                    figure,
                    str(self.logs.path(step)),
                    image=ran.image if ran is not None else None,
                    image_id=ran.image_id if ran is not None else None,
                )
            )

    def note_container(self, ran: Any) -> None:
        """The container the running step ran in (`container_runner.ContainerRan`)."""
        self._container = ran

    def _figure(self, step: str, outputs: Mapping[str, Any]) -> str | None:
        try:
            return step_figure(step, outputs, self.records)
        except (KeyError, TypeError, ValueError, OSError):
            # A figure is a courtesy: a step whose outputs changed shape still gets its line.
            return None

    def mark_cached(self) -> None:
        step = self.logs.current()
        if step is not None:
            self._cached.add(step)

    def write_steps(self) -> None:
        """`logs/steps.json`: each step's status, seconds and figure, for tools (bench/)."""
        self.logs.folder.mkdir(parents=True, exist_ok=True)
        rows = [asdict(result) for result in self.results]
        (self.logs.folder / STEPS_FILE).write_text(json.dumps(rows, indent=2) + "\n")


class _CacheHits(logging.Filter):
    """Notices kfp.local's cache-hit record, so the step's line says `cached`."""

    def __init__(self, display: RunDisplay) -> None:
        super().__init__()
        self._display = display

    def filter(self, record: logging.LogRecord) -> bool:
        if " cache hit " in record.getMessage():
            self._display.mark_cached()
        return True


@contextlib.contextmanager
def _wrap_task_runner(
    around: Callable[[Callable[[], Any], Mapping[str, Any]], Any],
) -> Iterator[None]:
    """Replace kfp.local's leaf-task runner with one that calls `around(run, arguments)`."""
    from kfp.local.orchestrator import task_executor

    original = task_executor.execute_single_task
    signature = inspect.signature(original)

    def execute_single_task(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        return around(lambda: original(*args, **kwargs), bound.arguments)

    task_executor.execute_single_task = execute_single_task  # type: ignore[assignment]
    try:
        yield
    finally:
        task_executor.execute_single_task = original  # type: ignore[assignment]


def step_name(task_name: str, task_spec: Any) -> str:
    """The name the pipeline gave the task (`set_display_name`), else kfp's task name."""
    display = getattr(getattr(task_spec, "task_info", None), "name", "") or ""
    name = display or task_name.removesuffix("-op")
    return re.sub(r"[^\w.-]+", "-", name)


# --- one figure per step, from its real outputs -----------------------------------------


def _metadata(outputs: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict(getattr(outputs[name], "metadata", None) or {})


def _count(value: Any) -> str:
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:,.2f}"


def _record(records: Path, step: str) -> dict[str, Any]:
    """The step's record under the run's records folder (lineage, register, gate...)."""
    found = sorted(records.glob(f"*/steps/{step}.json"))
    return json.loads(found[0].read_text()) if found else {}


def _ingest(outputs: Mapping[str, Any], records: Path) -> str:
    counts = _metadata(outputs, "counts")
    return (
        f"{_count(counts['records_kept'])} of {_count(counts['records_in'])} records kept, "
        f"{_count(counts['records_quarantined'])} quarantined"
    )


def _lineage(outputs: Mapping[str, Any], records: Path) -> str:
    reasons = _record(records, "lineage").get("reasons") or []
    verdict = "new data" if outputs["Output"] else "no new data"
    return f"{verdict}: {reasons[0]}" if reasons else verdict


def _prepare(outputs: Mapping[str, Any], records: Path) -> str:
    counts = _metadata(outputs, "counts")
    splits = " · ".join(
        f"{split} {_count(counts[f'records_{split}'])}" for split in ("train", "val", "test")
    )
    reuse = _metadata(outputs, "prepared").get("reuse", {}) if "prepared" in outputs else {}
    reused = bool(reuse.get("reused"))
    return f"{splits} records" + (", reused from an earlier run" if reused else "")


def _train(outputs: Mapping[str, Any], records: Path) -> str:
    model = _metadata(outputs, "model")
    line = (
        f"{_count(model['final_step'])} steps, best val loss "
        f"{float(model['best_val_loss']):.3f} at step {_count(model['best_step'])}"
    )
    if "trainjob" in model:
        line += f"; TrainJob {model['trainjob']} on {_count(model['nodes'])} nodes"
        if float(model.get("restarts", 0)):
            line += f", restarted {_count(model['restarts'])}x"
    return line


def _champion(outputs: Mapping[str, Any], records: Path) -> str:
    champion = outputs["Output"]
    return str(champion) if champion else "none yet: the base model is the baseline"


def _evaluate(outputs: Mapping[str, Any], records: Path) -> str:
    metrics = _metadata(outputs, "metrics")
    baseline = _metadata(outputs, "evaluation")["baseline_role"]
    candidate, bar = float(metrics["candidate_CIDEr"]), float(metrics[f"{baseline}_CIDEr"])
    figure = f"CIDEr {candidate:.3f} vs {baseline} {bar:.3f} ({candidate - bar:+.3f})"
    reused = _metadata(outputs, "evaluation").get("reused_captions") or {}
    # In the evaluation's order of roles: the step metadata's JSON comes back key-sorted.
    named = [f"{role} {'+'.join(reused[role])}" for role in ROLES if reused.get(role)]
    if named:
        figure += f"; reused captions: {', '.join(named)}"
    return figure


def _register(outputs: Mapping[str, Any], records: Path) -> str:
    return f"version {outputs['Output']}"


def _gate(outputs: Mapping[str, Any], records: Path) -> str:
    outcome = str(_metadata(outputs, "decision")["outcome"])
    return f"passed: {outcome}" if outputs["Output"] else outcome


def _promote(outputs: Mapping[str, Any], records: Path) -> str:
    return str(outputs["Output"])


def _notify(outputs: Mapping[str, Any], records: Path) -> str:
    outcome = json.loads(outputs["Output"])
    status, decision = str(outcome["status"]).lower(), str(outcome["decision"])
    if status in ("succeeded", decision):
        return f"outcome: {decision}"
    return f"outcome: {decision} (run {status})"


FIGURES: dict[str, Callable[[Mapping[str, Any], Path], str]] = {
    "ingest": _ingest,
    "lineage": _lineage,
    "prepare": _prepare,
    "train": _train,
    "champion": _champion,
    "evaluate": _evaluate,
    "register": _register,
    "gate": _gate,
    "promote": _promote,
    "notify": _notify,
}


def step_figure(step: str, outputs: Mapping[str, Any], records: Path) -> str | None:
    """The one figure that says how a step went, or None for a step without one."""
    figure = FIGURES.get(step)
    return figure(outputs, records) if figure is not None else None


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"
