"""The serving check's own parts, without vLLM: how agreement is counted, which test split
is sent, the messages a client sends, and how the server process is started and stopped.

`make serving-check` runs the whole check against real vLLM (CI runs it after the suite).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import pytest

from components.prepare.conversations import read_split
from components.serving.agreement import common_prefix, compare
from components.serving.check import ServingCheckError, chat_messages, find_evaluated_split
from components.serving.vllm_server import ServerError, free_port, serve_command, vllm_server
from tests.support.local_profile import LocalProfile


def words(text: str) -> list[int]:
    return [hash(word) for word in text.split()]


def test_agreement_counts_identical_captions_and_the_shared_prefix_of_the_rest() -> None:
    ours = {"a": "Opens the sign-in form.", "b": "Starts a call with Chloe.", "c": "Saves it."}
    theirs = {"a": "Opens the sign-in form.", "b": "Starts a call with James.", "c": "Deletes."}
    found = compare(ours, theirs, words)
    assert found.records == 3 and found.identical == 1
    assert found.agreement == pytest.approx(1 / 3)
    # a: all 4 words shared; b: 4 of 5; c: none.
    assert found.mean_prefix_tokens == pytest.approx((4 + 4 + 0) / 3)
    assert [(d.id, d.prefix_tokens) for d in found.disagreements] == [("b", 4), ("c", 0)]
    assert json.loads(json.dumps(found.summary()))["agreement"] == 0.3333


def test_a_record_captioned_by_one_side_only_is_an_error_not_a_drop() -> None:
    with pytest.raises(ValueError, match="record\\(s\\): b"):
        compare({"a": "x", "b": "y"}, {"a": "x"}, words)
    with pytest.raises(ValueError, match="no records"):
        compare({}, {}, words)
    assert common_prefix([1, 2, 3], [1, 2]) == 2


def test_the_split_sent_is_the_one_the_version_was_evaluated_on(
    local_profile: LocalProfile, tmp_path: Path
) -> None:
    import hashlib
    import shutil

    prepared = local_profile.prepared
    digest = "sha256:" + hashlib.sha256((prepared / "test.json").read_bytes()).hexdigest()
    other = shutil.copytree(prepared, tmp_path / "store" / "a-other")
    items = json.loads((other / "test.json").read_text())
    (other / "test.json").write_text(json.dumps(items[1:]))
    found = find_evaluated_split(digest, [tmp_path / "store", prepared.parent])
    assert found == prepared
    with pytest.raises(ServingCheckError, match="pass the prepared folder"):
        find_evaluated_split("sha256:" + "0" * 64, [tmp_path / "store"])


def test_the_client_sends_the_prepared_prompt_after_the_boxed_screenshot(
    local_profile: LocalProfile,
) -> None:
    record = read_split(local_profile.prepared, "test")[0]
    [message] = chat_messages(record)
    image, text = message["content"]
    assert message["role"] == "user" and text == {"type": "text", "text": record.prompt}
    header, encoded = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    assert base64.b64decode(encoded) == record.image.read_bytes()  # the file, byte for byte


def test_serve_command_is_bf16_on_loopback_and_eager_only_on_cpu() -> None:
    cpu = serve_command("py", Path("/m"), 8000, max_model_len=4096, cpu=True, served_name="n")
    assert cpu[:5] == ["py", "-m", "vllm.entrypoints.openai.api_server", "--model", "/m"]
    assert cpu[cpu.index("--dtype") + 1] == "bfloat16"
    assert cpu[cpu.index("--host") + 1] == "127.0.0.1"
    assert "--enforce-eager" in cpu
    gpu = serve_command("py", Path("/m"), 8000, max_model_len=4096, cpu=False, served_name="n")
    assert "--enforce-eager" not in gpu


# A stand-in for the server process: answers /health after a delay, spawns a child, and
# records that it was stopped. What is tested is the lifecycle, not vLLM.
SERVER = """
import http.server, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
open(sys.argv[2], "w").write(str(child.pid))
time.sleep(1.0)
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404); self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Health).serve_forever()
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_the_server_is_waited_for_and_stopped_with_its_children(tmp_path: Path) -> None:
    port = free_port()
    child_file = tmp_path / "child.pid"
    command = [sys.executable, "-c", SERVER, str(port), str(child_file)]
    with vllm_server(command, port, tmp_path / "server.log", start_timeout_s=60) as server:
        assert server.base_url == f"http://127.0.0.1:{port}"
        assert server.started_in >= 1.0
        child = int(child_file.read_text())
        assert _alive(child)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_a_server_that_dies_before_answering_names_its_log(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; print('no such model'); sys.exit(3)"]
    with (
        pytest.raises(ServerError, match=r"exited with 3 .*server\.log:\nno such model"),
        vllm_server(command, free_port(), tmp_path / "server.log", start_timeout_s=60),
    ):
        pass
