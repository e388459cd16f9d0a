"""The ComfyUI client against the simulator, a real subprocess over real sockets (no mocked HTTP)."""
from __future__ import annotations

import json
import socket
import struct
import threading
import time
import uuid

import pytest

from batches.comfyui import (
    ComfyUIClient,
    ComfyUIExecutionError,
    ComfyUIInterrupted,
    ComfyUIPromptLost,
    ComfyUIRejected,
    ComfyUITimeout,
    ComfyUIUnreachable,
    Event,
    EventStream,
    HistoryEntry,
    ImageRef,
)
from batches.comfyui.client import PNG_SIGNATURE, combo_choices
from tests.processes import free_port

CKPT = "sd_xl_base_1.0.safetensors"


def txt2img(*, seed: int = 1, steps: int = 3, batch_size: int = 2, ckpt: str = CKPT,
            prefix: str = "test/img", width: int = 64, height: int = 64) -> dict:
    """The smallest valid txt2img graph in ComfyUI's API format (comfyui-api.md section 1)."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch_size}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def new_id() -> str:
    # Canonical uuid4: newer ComfyUI refuses client prompt ids that are not.
    return str(uuid.uuid4())


def next_event(stream, prompt_id: str, kind: str, timeout: float = 10.0) -> Event:
    """Read the stream until an event of `kind` for `prompt_id` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = stream.next(timeout=deadline - time.monotonic())
        if event is not None and event.type == kind and event.prompt_id == prompt_id:
            return event
    raise AssertionError(f"no {kind} event for {prompt_id} within {timeout}s")


@pytest.fixture
def client(simulator):
    client = ComfyUIClient(simulator, timeout=5.0)
    yield client
    client.close()


@pytest.fixture
def stream(client):
    with client.events() as stream:
        yield stream


def test_health_is_true_when_the_simulator_answers(client):
    assert client.health() is True


def test_it_reads_system_stats_and_the_vram_of_the_first_device(simulator_factory):
    _, url = simulator_factory("--vram-gb", "30")
    client = ComfyUIClient(url)

    stats = client.system_stats()
    total, free = client.vram()

    assert stats["devices"][0]["vram_total"] == total
    assert total == 30 * 1024 ** 3
    assert 0 < free <= total


def test_it_lists_checkpoints_loras_samplers_and_schedulers(simulator_factory):
    _, url = simulator_factory("--checkpoints", "a.safetensors,b.safetensors", "--loras", "x.safetensors,y.safetensors")
    client = ComfyUIClient(url)

    assert client.checkpoints() == ["a.safetensors", "b.safetensors"]
    assert client.loras() == ["x.safetensors", "y.safetensors"]
    assert "euler" in client.samplers()
    assert "normal" in client.schedulers()


def test_it_submits_under_our_prompt_id_and_streams_the_whole_batch(client, stream):
    prompt_id = new_id()

    submitted = client.submit(txt2img(steps=4, batch_size=3), prompt_id=prompt_id)
    events: list[Event] = []
    entry = client.wait_for(prompt_id, timeout=20, stream=stream, on_event=events.append, poll_interval=30)

    assert submitted.prompt_id == prompt_id and submitted.node_errors == {}
    kinds = [e.type for e in events]
    assert kinds[0] == "execution_start"
    assert kinds.index("execution_start") < kinds.index("executed") < kinds.index("execution_success")
    assert events[-1].type == "executing" and events[-1].data["node"] is None
    assert all(e.prompt_id == prompt_id for e in events)
    assert [e.data["value"] for e in events if e.type == "progress"] == [1, 2, 3, 4]
    assert {e.data["max"] for e in events if e.type == "progress"} == {4}
    executed = next(e for e in events if e.type == "executed")
    assert executed.data["node"] == "9"

    assert entry.status == "success" and entry.error is None
    entry.raise_for_status()
    assert len(entry.images) == 3
    assert all(ref.type == "output" and ref.subfolder == "test" for ref in entry.images)
    assert [r["filename"] for r in executed.data["output"]["images"]] == [r.filename for r in entry.images]
    assert client.download(entry.images[0]).startswith(PNG_SIGNATURE)


def test_wait_for_without_a_stream_polls_the_history(client):
    prompt_id = new_id()
    client.submit(txt2img(), prompt_id=prompt_id)

    entry = client.wait_for(prompt_id, timeout=20, poll_interval=0.05)

    assert entry.status == "success" and len(entry.images) == 2
    assert client.history(prompt_id).images == entry.images


def test_an_unknown_checkpoint_is_rejected_with_node_errors_and_is_not_retryable(client):
    prompt_id = new_id()

    with pytest.raises(ComfyUIRejected) as caught:
        client.submit(txt2img(ckpt="nope.safetensors"), prompt_id=prompt_id)

    error = caught.value
    assert error.retryable is False
    assert error.node_errors["4"]["class_type"] == "CheckpointLoaderSimple"
    assert error.node_errors["4"]["errors"][0]["type"] == "value_not_in_list"
    assert "node 4 (CheckpointLoaderSimple): ckpt_name" in str(error)
    assert "nope.safetensors" in str(error) and "(value_not_in_list)" in str(error)
    assert prompt_id not in client.queue()


def test_a_save_outside_the_output_folder_fails_at_run_time_naming_the_node(client, stream):
    prompt_id = new_id()
    client.submit(txt2img(prefix="../../escape"), prompt_id=prompt_id)

    entry = client.wait_for(prompt_id, timeout=20, stream=stream)

    assert entry.status == "error"
    with pytest.raises(ComfyUIExecutionError) as caught:
        entry.raise_for_status()
    error = caught.value
    assert error.retryable is False
    assert (error.prompt_id, error.node_id, error.node_type) == (prompt_id, "9", "SaveImage")
    assert error.exception_message and error.is_out_of_memory is False


def test_interrupting_our_running_prompt_leaves_the_pending_one_to_run(client, stream):
    first, second = new_id(), new_id()
    client.submit(txt2img(steps=100), prompt_id=first)
    client.submit(txt2img(seed=2), prompt_id=second)
    next_event(stream, first, "progress")

    client.interrupt(second)  # pending: ComfyUI ignores a targeted interrupt of a prompt not running
    client.interrupt(first)
    interrupted = client.wait_for(first, timeout=20, stream=stream)
    after = client.wait_for(second, timeout=20, stream=stream)

    assert interrupted.status == "interrupted"
    with pytest.raises(ComfyUIInterrupted) as caught:
        interrupted.raise_for_status()
    assert caught.value.prompt_id == first and caught.value.node_id == "3" and not caught.value.retryable
    assert after.status == "success" and len(after.images) == 2


def test_a_deleted_pending_prompt_never_runs(client, stream):
    running, doomed = new_id(), new_id()
    client.submit(txt2img(steps=60), prompt_id=running)
    client.submit(txt2img(seed=2), prompt_id=doomed)
    assert doomed in client.queue().pending

    client.delete_pending([doomed])
    client.wait_for(running, timeout=20, stream=stream)

    assert doomed not in client.queue()
    assert client.history(doomed) is None
    assert client.locate(doomed) is None
    with pytest.raises(ComfyUIPromptLost):
        client.wait_for(doomed, timeout=5, stream=stream)


def test_the_queue_lists_pending_prompts_in_run_order(client, stream):
    running, late, early, urgent = new_id(), new_id(), new_id(), new_id()
    client.submit(txt2img(steps=300), prompt_id=running)
    next_event(stream, running, "execution_start")
    client.submit(txt2img(seed=2), prompt_id=late, number=1000)
    client.submit(txt2img(seed=3), prompt_id=early, number=500)
    client.submit(txt2img(seed=4), prompt_id=urgent, front=True)

    queue = client.queue()

    assert queue.running == [running]
    assert queue.pending == [urgent, early, late]
    assert queue.numbers[early] == 500 and queue.numbers[urgent] < 0


def test_two_prompts_back_to_back_both_complete_on_one_stream(client, stream):
    first, second = new_id(), new_id()
    client.submit(txt2img(steps=5), prompt_id=first)
    client.submit(txt2img(seed=2, steps=5), prompt_id=second)

    # poll_interval=30: completion has to come from the stream, not from polling
    entry_first = client.wait_for(first, timeout=20, stream=stream, poll_interval=30)
    time.sleep(0.5)  # the worker handles `first` while `second` runs and finishes unread
    seen: list[Event] = []
    entry_second = client.wait_for(second, timeout=20, stream=stream, on_event=seen.append, poll_interval=30)

    assert entry_first.status == entry_second.status == "success"
    assert seen[0].type == "execution_start" and seen[-1].is_done_marker


def test_events_read_while_waiting_on_another_prompt_are_kept_for_it(client, stream):
    first, second = new_id(), new_id()
    client.submit(txt2img(steps=5), prompt_id=first)
    client.submit(txt2img(seed=2, steps=5), prompt_id=second)

    client.wait_for(second, timeout=20, stream=stream, poll_interval=30)  # reads all of first's events
    seen: list[Event] = []
    started = time.monotonic()
    entry = client.wait_for(first, timeout=20, stream=stream, on_event=seen.append, poll_interval=30)

    assert time.monotonic() - started < 1
    assert entry.status == "success"
    assert [e.data["value"] for e in seen if e.type == "progress"] == [1, 2, 3, 4, 5]
    assert seen[-1].is_done_marker


def test_wait_for_completes_when_the_socket_drops_mid_run(client, stream):
    prompt_id = new_id()
    client.submit(txt2img(steps=100), prompt_id=prompt_id)
    seen: list[Event] = []

    def drop_once(event: Event) -> None:
        seen.append(event)
        if event.type == "progress" and event.data["value"] == 3:
            stream._ws.socket.shutdown(socket.SHUT_RDWR)  # as a network drop would

    entry = client.wait_for(prompt_id, timeout=20, stream=stream, on_event=drop_once, poll_interval=0.5)

    assert entry.status == "success" and len(entry.images) == 2
    kinds = [e.type for e in seen]
    assert "reconnected" in kinds
    assert "progress" in kinds[kinds.index("reconnected"):]  # the new socket gets this prompt's events


def test_wait_for_times_out_while_the_prompt_still_runs(client, stream):
    prompt_id = new_id()
    client.submit(txt2img(steps=100), prompt_id=prompt_id)

    with pytest.raises(ComfyUITimeout) as caught:
        client.wait_for(prompt_id, timeout=0.3, stream=stream)

    assert caught.value.retryable is True
    client.interrupt(prompt_id)


def test_a_prompt_is_lost_when_comfyui_restarts_mid_run(simulator_factory):
    proc, url = simulator_factory(step_ms=50)
    client = ComfyUIClient(url, timeout=2.0, retries=1)
    stream = client.events()
    prompt_id = new_id()
    client.submit(txt2img(steps=100), prompt_id=prompt_id)
    next_event(stream, prompt_id, "progress")

    proc.kill()
    with pytest.raises(ComfyUIUnreachable) as down:
        client.wait_for(prompt_id, timeout=10, stream=stream, poll_interval=0.1, unreachable_grace=0.5)
    simulator_factory(step_ms=50, port=proc.extra["port"])
    with pytest.raises(ComfyUIPromptLost) as lost:
        client.wait_for(prompt_id, timeout=10, stream=stream, poll_interval=0.1)

    assert down.value.retryable is True
    assert lost.value.retryable is True and lost.value.prompt_id == prompt_id
    stream.close()


def test_calls_where_nothing_listens_raise_retryable_unreachable():
    client = ComfyUIClient(f"http://127.0.0.1:{free_port()}", timeout=1.0, retries=1)

    assert client.health() is False
    for call in (client.queue, client.system_stats, client.events,
                 lambda: client.submit(txt2img(), prompt_id=new_id()),
                 lambda: client.download(ImageRef("x.png", "", "output"))):
        with pytest.raises(ComfyUIUnreachable) as caught:
            call()
        assert caught.value.retryable is True


class DroppingProxy:
    """A TCP proxy in front of the simulator that fails the first POST /prompt: it either drops the
    connection before forwarding (`forward=False`: ComfyUI never saw it) or forwards it and drops the
    response (`forward=True`: ComfyUI queued it but the client cannot know)."""

    def __init__(self, upstream: str, *, forward: bool):
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self.forward = forward
        self.posts = 0  # POST /prompt requests the client sent
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self) -> None:
        self.server.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
            length = next((int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
            while len(body) < length:
                body += conn.recv(65536)
            is_post = lines[0].startswith(b"POST /prompt ")
            self.posts += is_post
            if is_post and self.posts == 1 and not self.forward:
                return  # dropped before ComfyUI saw it
            with socket.create_connection(self.upstream) as up:
                up.sendall(b"\r\n".join(lines + [b"Connection: close"]) + b"\r\n\r\n" + body)
                response = b""
                while chunk := up.recv(65536):
                    response += chunk
            if is_post and self.posts == 1:
                return  # ComfyUI queued it; the answer is lost
            conn.sendall(response)


@pytest.mark.parametrize("forward", [False, True], ids=["never-sent", "answer-lost"])
def test_a_submit_whose_connection_breaks_is_queued_exactly_once(simulator, forward):
    proxy = DroppingProxy(simulator, forward=forward)
    client = ComfyUIClient(proxy.url, timeout=5.0)
    prompt_id = new_id()

    try:
        submitted = client.submit(txt2img(), prompt_id=prompt_id)
        queue = client.queue()
        entry = client.wait_for(prompt_id, timeout=20, poll_interval=0.05)
    finally:
        proxy.close()

    assert submitted.prompt_id == prompt_id
    assert proxy.posts == (1 if forward else 2)  # found in the queue, so not posted again
    assert queue.running.count(prompt_id) + queue.pending.count(prompt_id) <= 1
    assert entry.status == "success"


# -- parsing of shapes real ComfyUI sends (comfyui-api.md), no server needed ------------------------

def test_both_combo_encodings_give_the_choices():
    assert combo_choices([["a.safetensors", "b.safetensors"], {"tooltip": "..."}]) == ["a.safetensors", "b.safetensors"]
    assert combo_choices(["COMBO", {"options": ["x", "y"], "multiselect": False}]) == ["x", "y"]
    assert combo_choices([[], {}]) == []
    assert combo_choices(["INT", {"default": 0}]) is None


def test_history_tells_an_interrupt_from_an_error_by_the_last_message():
    start = ["execution_start", {"prompt_id": "p", "timestamp": 1}]
    interrupted = HistoryEntry.from_json("p", {
        "prompt": [7, "p", {}, {}, ["9"]], "outputs": {},
        "status": {"status_str": "error", "completed": False, "messages": [start, ["execution_interrupted", {
            "prompt_id": "p", "node_id": "3", "node_type": "KSampler", "executed": ["5"], "timestamp": 2}]]}})
    failed = HistoryEntry.from_json("p", {
        "outputs": {"2": {"images": [{"filename": "a_00001_.png", "subfolder": "", "type": "output"}]}},
        "status": {"status_str": "error", "completed": False, "messages": [start, ["execution_error", {
            "prompt_id": "p", "node_id": "9", "node_type": "SaveImage", "exception_type": "Exception",
            "exception_message": "**** ERROR: Saving image outside the output folder is not allowed."}]]}})

    assert (interrupted.status, interrupted.number, interrupted.error["node_id"]) == ("interrupted", 7.0, "3")
    assert failed.status == "error" and failed.images == [ImageRef("a_00001_.png", "", "output")]
    with pytest.raises(ComfyUIExecutionError, match="node 9 \\(SaveImage\\)"):
        failed.raise_for_status()


def test_only_output_images_count_in_node_order():
    entry = HistoryEntry.from_json("p", {"outputs": {
        "9": {"images": [{"filename": "b1.png", "subfolder": "s", "type": "output"},
                         {"filename": "b2.png", "subfolder": "s", "type": "output"}]},
        "12": {"images": [{"filename": "t.png", "subfolder": "", "type": "temp"}]},
        "13": {"text": ["hello"]}},
        "status": {"status_str": "success", "completed": True, "messages": []}})

    assert [ref.filename for ref in entry.images] == ["b1.png", "b2.png"]


@pytest.mark.parametrize("exception_type, message, oom", [
    ("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2.00 GiB", True),
    ("torch.cuda.OutOfMemoryError", "CUDA out of memory.", True),
    ("RuntimeError", "Allocation on device 0 would exceed allowed memory. (out of memory)", True),
    ("Exception", "**** ERROR: Saving image outside the output folder is not allowed.", False),
])
def test_out_of_memory_is_recognised_in_the_shapes_comfyui_reports(exception_type, message, oom):
    error = ComfyUIExecutionError("p", {"node_id": "3", "node_type": "KSampler",
                                        "exception_type": exception_type, "exception_message": message})
    assert error.is_out_of_memory is oom


def test_a_rejection_names_node_class_input_and_message_for_every_error():
    error = ComfyUIRejected({"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}, {
        "1": {"class_type": "EmptyImage", "dependent_outputs": ["2"], "errors": [
            {"type": "required_input_missing", "message": "Required input is missing", "details": "width",
             "extra_info": {"input_name": "width"}}]},
        "4": {"class_type": "CheckpointLoaderSimple", "dependent_outputs": ["9"], "errors": [
            {"type": "value_not_in_list", "message": "Value not in list",
             "details": "ckpt_name: 'x.safetensors' not in []", "extra_info": {"input_name": "ckpt_name"}}]}})

    assert str(error) == ("ComfyUI rejected the prompt: node 1 (EmptyImage): width: Required input is missing "
                          "(required_input_missing); node 4 (CheckpointLoaderSimple): ckpt_name: 'x.safetensors' "
                          "not in [] (value_not_in_list)")


def test_binary_preview_frames_become_preview_events():
    stream = EventStream("http://127.0.0.1:1", "me")
    stream._running = "p"
    legacy = stream._parse(struct.pack(">II", 1, 1) + b"\xff\xd8jpeg")
    meta = json.dumps({"node_id": "3", "prompt_id": "q", "image_type": "image/png"}).encode()
    with_meta = stream._parse(struct.pack(">II", 4, len(meta)) + meta + PNG_SIGNATURE)

    assert (legacy.type, legacy.data) == ("preview", {"event": 1, "bytes": 14, "image_type": "image/jpeg",
                                                      "prompt_id": "p", "image": b"\xff\xd8jpeg"})
    assert with_meta.type == "preview" and with_meta.prompt_id == "q" and with_meta.data["node_id"] == "3"
    assert with_meta.data["image"] == PNG_SIGNATURE


def test_a_prompt_waiting_for_its_turn_keeps_only_its_newest_preview():
    stream = EventStream("http://127.0.0.1:1", "me")
    stream._stash("p", Event("progress", {"value": 1, "prompt_id": "p"}))
    for n in range(5):
        stream._stash("p", Event("preview", {"image": bytes([n]), "prompt_id": "p"}))
    kept = list(stream._buffers["p"])
    assert [e.type for e in kept] == ["progress", "preview"] and kept[-1].data["image"] == bytes([4])
