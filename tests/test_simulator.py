"""The ComfyUI simulator, driven as a real subprocess over raw HTTP and WebSocket.

Expected values come from ComfyUI v0.3.64 (see /work/shared/comfyui-api.md and the module
docstrings in batches/comfyui_sim/). Most tests share one fast simulator; each uses its own
prompt text so that ComfyUI's cross-prompt cache never links two tests.
"""
from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pytest
import requests
from PIL import Image
from websockets.sync.client import connect

from tests.processes import start_simulator

CKPT = "sd_xl_base_1.0.safetensors"


# --- helpers ------------------------------------------------------------------------------------

def make_graph(text: str, *, seed: int = 1, width: int = 64, height: int = 64, batch: int = 1, steps: int = 3,
               ckpt: str = CKPT, prefix: str = "sim/test", sampler: str = "euler") -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}, "_meta": {"title": "Load"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": sampler, "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": prefix, "images": ["8", 0]}},
    }


def post(url: str, graph: dict, **body) -> requests.Response:
    return requests.post(url + "/prompt", json={"prompt": graph, **body}, timeout=10)


def queue(url: str, graph: dict, **body) -> str:
    response = post(url, graph, **body)
    assert response.status_code == 200, response.text
    return response.json()["prompt_id"]


def wait_history(url: str, prompt_id: str, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = requests.get(f"{url}/history/{prompt_id}", timeout=5).json()
        if entry:
            return entry[prompt_id]
        time.sleep(0.02)
    raise TimeoutError(f"{prompt_id} never reached the history")


def wait_running(url: str, prompt_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = requests.get(url + "/queue", timeout=5).json()["queue_running"]
        if running and running[0][1] == prompt_id:
            return
        time.sleep(0.01)
    raise TimeoutError(f"{prompt_id} never started")


def ws_url(url: str, client_id: str | None = None, prefix: str = "") -> str:
    base = url.replace("http://", "ws://") + prefix + "/ws"
    return base + (f"?clientId={client_id}" if client_id else "")


def recv_json(ws, timeout: float = 10.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def collect_until_done(ws, prompt_id: str, timeout: float = 15.0) -> list[dict]:
    """Every message up to and including `executing {node: null}` for this prompt."""
    messages = []
    deadline = time.monotonic() + timeout
    while True:
        message = recv_json(ws, timeout=max(0.1, deadline - time.monotonic()))
        messages.append(message)
        data = message["data"]
        if message["type"] == "executing" and data.get("node") is None and data.get("prompt_id") == prompt_id:
            return messages


def view(url: str, image: dict) -> bytes:
    response = requests.get(url + "/view", params=image, timeout=5)
    assert response.status_code == 200
    return response.content


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """One shared fast simulator for the tests whose timing does not matter."""
    tmp = tmp_path_factory.mktemp("shared-sim")
    proc, url = start_simulator(tmp, step_ms=5)
    yield url
    proc.stop()


# --- informational routes ---------------------------------------------------------------------

def test_it_serves_system_stats_features_and_embeddings_under_both_prefixes(sim):
    for prefix in ("", "/api"):
        stats = requests.get(sim + prefix + "/system_stats", timeout=5).json()
        assert stats["system"]["comfyui_version"] == "0.3.64"
        assert stats["devices"][0]["vram_total"] == 119 * 1024**3
        assert stats["devices"][0]["type"] == "cuda"
        assert requests.get(sim + prefix + "/features", timeout=5).json() == {
            "supports_preview_metadata": True, "max_upload_size": 104857600}
        assert requests.get(sim + prefix + "/embeddings", timeout=5).json() == []
        assert requests.get(sim + prefix + "/prompt", timeout=5).json().keys() == {"exec_info"}


def test_it_lists_model_folders_and_404s_an_unknown_one(sim):
    folders = requests.get(sim + "/models", timeout=5).json()
    assert "checkpoints" in folders and "loras" in folders and "vae" in folders
    assert requests.get(sim + "/api/models/checkpoints", timeout=5).json() == [
        "sd_xl_base_1.0.safetensors", "sd_xl_refiner_1.0.safetensors", "pixel_art_xl.safetensors"]
    assert requests.get(sim + "/models/loras", timeout=5).json() == [
        "pixel_art_lora.safetensors", "pixel-art-xl.safetensors"]
    assert requests.get(sim + "/models/vae", timeout=5).json() == []
    assert requests.get(sim + "/models/nope", timeout=5).status_code == 404


def test_it_describes_nodes_in_object_info_with_legacy_combos(sim):
    ckpt = requests.get(sim + "/object_info/CheckpointLoaderSimple", timeout=5).json()["CheckpointLoaderSimple"]
    choices, options = ckpt["input"]["required"]["ckpt_name"]
    assert choices[0] == CKPT and "tooltip" in options
    assert ckpt["output"] == ["MODEL", "CLIP", "VAE"] and ckpt["output_node"] is False
    ksampler = requests.get(sim + "/api/object_info/KSampler", timeout=5).json()["KSampler"]
    assert "euler" in ksampler["input"]["required"]["sampler_name"][0]
    assert "karras" in ksampler["input"]["required"]["scheduler"][0]
    assert ksampler["input"]["required"]["steps"] == ["INT", {"default": 20, "min": 1, "max": 10000, "tooltip":
                                                              "The number of steps used in the denoising process."}]
    assert ksampler["input_order"]["required"][0] == "model"
    lora = requests.get(sim + "/object_info/LoraLoader", timeout=5).json()["LoraLoader"]
    assert lora["input"]["required"]["lora_name"][0] == ["pixel_art_lora.safetensors", "pixel-art-xl.safetensors"]
    everything = requests.get(sim + "/object_info", timeout=5).json()
    assert everything["SaveImage"]["output_node"] is True
    assert everything["SaveImage"]["input"]["hidden"] == {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}
    assert requests.get(sim + "/object_info/NoSuchNode", timeout=5).json() == {}


# --- a run, its events and its files ----------------------------------------------------------

def test_it_runs_a_batch_and_sends_the_events_in_comfyui_order(sim):
    client = uuid.uuid4().hex
    with connect(ws_url(sim, client)) as ws:
        hello = recv_json(ws)
        assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client}}
        prompt_id = queue(sim, make_graph("event order fox", batch=2, steps=4, prefix="order/fox"), client_id=client)
        messages = collect_until_done(ws, prompt_id)
    # History is stored before the final `executing` null, so it is there the moment that arrives.
    assert requests.get(f"{sim}/history/{prompt_id}", timeout=5).json()[prompt_id]["status"]["completed"] is True

    kinds = [(m["type"], m["data"].get("node")) for m in messages if m["type"] != "progress_state"]
    assert kinds == [
        ("status", None), ("status", None), ("execution_start", None), ("execution_cached", None),
        ("executing", "4"), ("executing", "5"), ("executing", "7"), ("executing", "6"), ("executing", "3"),
        ("progress", "3"), ("progress", "3"), ("progress", "3"), ("progress", "3"),
        ("executing", "8"), ("executing", "9"), ("executed", "9"), ("execution_success", None),
        ("status", None), ("executing", None)]
    by_type = {m["type"]: m["data"] for m in messages}
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert [p["value"] for p in progress] == [1, 2, 3, 4]
    assert progress[0] == {"value": 1, "max": 4, "prompt_id": prompt_id, "node": "3"}
    assert messages[0]["data"]["status"]["exec_info"]["queue_remaining"] == 1
    assert messages[-2]["data"]["status"]["exec_info"]["queue_remaining"] == 0
    assert by_type["execution_cached"]["nodes"] == []
    assert by_type["executing"] == {"node": None, "prompt_id": prompt_id}
    assert by_type["executed"]["output"]["images"] == [
        {"filename": "fox_00001_.png", "subfolder": "order", "type": "output"},
        {"filename": "fox_00002_.png", "subfolder": "order", "type": "output"}]
    states = [m["data"]["nodes"] for m in messages if m["type"] == "progress_state"]
    assert states[-1]["9"]["state"] == "finished" and states[-1]["3"]["max"] == 4


def test_it_writes_pngs_of_the_requested_size_and_count_with_prompt_metadata(sim):
    graph = make_graph("metadata wolf", width=96, height=64, batch=3, prefix="meta/wolf")
    workflow = {"nodes": [{"id": 1}], "version": 0.4}
    prompt_id = queue(sim, graph, extra_data={"extra_pnginfo": {"workflow": workflow}})
    images = wait_history(sim, prompt_id)["outputs"]["9"]["images"]
    assert len(images) == 3
    for image in images:
        png = Image.open(io.BytesIO(view(sim, image)))
        # As ComfyUI's SaveImage writes them: RGB, no alpha; the backdrop is opaque, as SDXL paints it.
        assert png.size == (96, 64) and png.mode == "RGB"
        assert png.getpixel((0, 0)) == png.getpixel((95, 0)) != (0, 0, 0)
        assert json.loads(png.text["prompt"]) == graph
        assert json.loads(png.text["workflow"]) == workflow


def test_it_numbers_files_per_prefix_and_expands_placeholders(sim):
    first = wait_history(sim, queue(sim, make_graph("counter owl", seed=1, prefix="count/owl")))
    second = wait_history(sim, queue(sim, make_graph("counter owl", seed=2, prefix="count/owl", batch=2)))
    assert [i["filename"] for i in first["outputs"]["9"]["images"]] == ["owl_00001_.png"]
    assert [i["filename"] for i in second["outputs"]["9"]["images"]] == ["owl_00002_.png", "owl_00003_.png"]
    sized = wait_history(sim, queue(sim, make_graph("counter owl", width=80, prefix="count/%width%x%height%_owl")))
    assert sized["outputs"]["9"]["images"] == [{"filename": "80x64_owl_00001_.png", "subfolder": "count",
                                               "type": "output"}]


def test_it_draws_other_pixels_for_other_seeds_and_identical_bytes_for_the_same_inputs(sim):
    a = make_graph("determinism cat", seed=11, prefix="det/cat")
    b = make_graph("determinism cat", seed=12, prefix="det/cat")
    first = wait_history(sim, queue(sim, a))["outputs"]["9"]["images"][0]
    other = wait_history(sim, queue(sim, b))["outputs"]["9"]["images"][0]
    # Running b evicted a from the (classic, per-prompt) cache, so a runs again into a new file.
    again = wait_history(sim, queue(sim, a))["outputs"]["9"]["images"][0]
    assert first["filename"] != again["filename"]
    assert view(sim, first) == view(sim, again)
    assert view(sim, first) != view(sim, other)
    pixels = lambda image: Image.open(io.BytesIO(view(sim, image))).tobytes()  # noqa: E731
    assert pixels(first) != pixels(other)


def test_it_reuses_the_cache_for_an_identical_resubmission(sim, tmp_path):
    client = uuid.uuid4().hex
    graph = make_graph("cache heron", prefix="cache/heron")
    with connect(ws_url(sim, client)) as ws:
        recv_json(ws)
        first_id = queue(sim, graph, client_id=client)
        collect_until_done(ws, first_id)
        second_id = queue(sim, graph, client_id=client)
        rerun = collect_until_done(ws, second_id)
        partial_id = queue(sim, make_graph("cache heron", seed=99, prefix="cache/heron"), client_id=client)
        partial = collect_until_done(ws, partial_id)
    first = wait_history(sim, first_id)
    second = wait_history(sim, second_id)
    assert second["outputs"] == first["outputs"]  # the old file list, no new file
    cached = next(m["data"] for m in rerun if m["type"] == "execution_cached")
    assert cached["nodes"] == ["4", "6", "7", "5", "3", "8", "9"]
    assert [m["data"]["node"] for m in rerun if m["type"] == "executing"] == [None]
    executed = next(m["data"] for m in rerun if m["type"] == "executed")
    assert executed["output"] == first["outputs"]["9"]
    assert second["status"]["status_str"] == "success"
    # A new seed reuses everything upstream of the sampler.
    assert next(m["data"] for m in partial if m["type"] == "execution_cached")["nodes"] == ["4", "6", "7", "5"]
    assert [m["data"]["node"] for m in partial if m["type"] == "executing"] == ["3", "8", "9", None]
    assert wait_history(sim, partial_id)["outputs"]["9"]["images"][0]["filename"] == "heron_00002_.png"


def test_it_runs_again_after_free_memory_drops_the_cache(sim):
    graph = make_graph("free memory crab", prefix="free/crab")
    first = wait_history(sim, queue(sim, graph))
    assert requests.post(sim + "/free", json={"unload_models": True, "free_memory": True}, timeout=5).status_code == 200
    time.sleep(0.3)  # the worker applies the flags when it wakes up
    second = wait_history(sim, queue(sim, graph))
    assert second["status"]["messages"][1][1]["nodes"] == []
    assert first["outputs"] != second["outputs"]


# --- validation -------------------------------------------------------------------------------

def test_it_rejects_graphs_comfyui_cannot_execute(sim):
    unknown = post(sim, {"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert unknown.status_code == 400
    assert unknown.json() == {"error": {"type": "invalid_prompt", "message": "Cannot execute because node NoSuchNode "
                              "does not exist.", "details": "Node ID '#1'", "extra_info": {}}, "node_errors": {}}
    missing = post(sim, {"1": {"inputs": {}}})
    assert missing.json()["error"]["message"] == "Cannot execute because a node is missing the class_type property."
    no_outputs = post(sim, {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}}})
    assert no_outputs.status_code == 400
    assert no_outputs.json()["error"] == {"type": "prompt_no_outputs", "message": "Prompt has no outputs",
                                          "details": "", "extra_info": {}}
    no_prompt = requests.post(sim + "/prompt", json={"client_id": "x"}, timeout=5)
    assert no_prompt.status_code == 400 and no_prompt.json()["error"]["type"] == "no_prompt"
    assert requests.post(sim + "/prompt", data="not json", timeout=5).status_code == 500


def node_errors_for(url: str, graph: dict) -> dict:
    response = post(url, graph)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "prompt_outputs_failed_validation"
    return response.json()["node_errors"]


def test_it_reports_node_errors_the_way_comfyui_does(sim):
    graph = make_graph("errors")
    del graph["5"]["inputs"]["width"]
    errors = node_errors_for(sim, graph)
    assert errors["5"] == {"errors": [{"type": "required_input_missing", "message": "Required input is missing",
                                       "details": "width", "extra_info": {"input_name": "width"}}],
                           "dependent_outputs": ["9"], "class_type": "EmptyLatentImage"}

    graph = make_graph("errors", ckpt="nope.safetensors")
    error = node_errors_for(sim, graph)["4"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"].startswith("ckpt_name: 'nope.safetensors' not in ['sd_xl_base_1.0.safetensors'")
    assert error["extra_info"]["received_value"] == "nope.safetensors"
    assert error["extra_info"]["input_config"][0][0] == CKPT

    error = node_errors_for(sim, make_graph("errors", sampler="warp_drive"))["3"]["errors"][0]
    assert error["details"] == "sampler_name: 'warp_drive' not in (list of length 42)"
    assert error["extra_info"]["input_config"] is None

    graph = make_graph("errors", steps=0)
    graph["5"]["inputs"]["width"] = 99999
    errors = node_errors_for(sim, graph)
    assert errors["3"]["errors"][0]["type"] == "value_smaller_than_min"
    assert errors["3"]["errors"][0]["message"] == "Value 0 smaller than min of 1"
    assert errors["5"]["errors"][0]["message"] == "Value 99999 bigger than max of 16384"

    graph = make_graph("errors")
    graph["5"]["inputs"]["height"] = "abc"
    error = node_errors_for(sim, graph)["5"]["errors"][0]
    assert error["type"] == "invalid_input_type"
    assert error["message"] == "Failed to convert an input value to a INT value"

    graph = make_graph("errors")
    graph["9"]["inputs"]["images"] = ["3", 0]
    error = node_errors_for(sim, graph)["9"]["errors"][0]
    assert error["type"] == "return_type_mismatch"
    assert error["details"] == "images, received_type(LATENT) mismatch input_type(IMAGE)"

    graph = make_graph("errors")
    graph["9"]["inputs"]["images"] = ["8", 0, 1]
    assert node_errors_for(sim, graph)["9"]["errors"][0]["type"] == "bad_linked_input"

    graph = make_graph("errors")
    graph["9"]["inputs"]["images"] = ["77", 0]
    error = node_errors_for(sim, graph)["9"]["errors"][0]
    assert error["type"] == "exception_during_validation"
    assert error["details"] == "'77'" and error["extra_info"]["exception_type"] == "KeyError"


def test_it_queues_a_prompt_when_at_least_one_output_validates(sim):
    graph = make_graph("partial badger", prefix="partial/badger")
    graph["10"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "partial/broken"}}
    response = post(sim, graph)
    assert response.status_code == 200
    body = response.json()
    assert body["node_errors"]["10"]["errors"][0]["type"] == "required_input_missing"
    assert body["node_errors"]["10"]["dependent_outputs"] == ["10"]
    entry = wait_history(sim, body["prompt_id"])
    assert list(entry["outputs"]) == ["9"] and entry["prompt"][4] == ["9"]


def test_it_coerces_scalars_and_unwraps_value_lists(sim):
    graph = make_graph("coerce mole")
    graph["3"]["inputs"].update(seed="42", cfg="6", steps=2.0)
    graph["6"]["inputs"]["text"] = {"__value__": "coerce mole"}
    entry = wait_history(sim, queue(sim, graph))
    inputs = entry["prompt"][2]["3"]["inputs"]
    assert (inputs["seed"], inputs["cfg"], inputs["steps"]) == (42, 6.0, 2)
    assert isinstance(inputs["cfg"], float) and entry["prompt"][2]["6"]["inputs"]["text"] == "coerce mole"


def test_it_counts_every_post_including_rejected_ones(simulator):
    assert post(simulator, make_graph("count one")).json()["number"] == 0
    assert post(simulator, {"1": {"class_type": "Nope", "inputs": {}}}).status_code == 400
    assert requests.post(simulator + "/prompt", json={}, timeout=5).status_code == 400
    assert post(simulator, make_graph("count two"), front=True).json()["number"] == -3
    assert post(simulator, make_graph("count three"), number=7.5).json()["number"] == 7.5
    assert post(simulator, make_graph("count four")).json()["number"] == 4  # an explicit number does not count
    chosen = post(simulator, make_graph("count five"), prompt_id="my-own-id").json()
    assert (chosen["prompt_id"], chosen["number"]) == ("my-own-id", 5)


# --- queue, interrupt, origin, view, history --------------------------------------------------

def test_it_runs_the_queue_in_heap_order_with_front_and_explicit_numbers(simulator_factory):
    _, url = simulator_factory("--step-ms", "100")
    a = queue(url, make_graph("heap a", steps=4))
    wait_running(url, a)
    b = queue(url, make_graph("heap b", steps=1))
    c = queue(url, make_graph("heap c", steps=1))
    d_response = post(url, make_graph("heap d", steps=1), front=True)
    d = d_response.json()["prompt_id"]
    e = post(url, make_graph("heap e", steps=1), number=1.5).json()["prompt_id"]
    assert d_response.json()["number"] == -3
    pending = requests.get(url + "/queue", timeout=5).json()["queue_pending"]
    assert sorted((item[0], item[1]) for item in pending) == [(-3, d), (1, b), (1.5, e), (2, c)]
    assert all(len(item) == 5 and item[4] == ["9"] for item in pending)
    starts = {pid: wait_history(url, pid)["status"]["messages"][0][1]["timestamp"] for pid in (a, b, c, d, e)}
    assert sorted(starts, key=lambda pid: starts[pid]) == [a, d, b, e, c]


def test_it_deletes_pending_prompts_but_leaves_the_running_one(simulator_factory):
    _, url = simulator_factory("--step-ms", "100")
    running = queue(url, make_graph("delete running", steps=5))
    wait_running(url, running)
    doomed = queue(url, make_graph("delete doomed", steps=1))
    kept = queue(url, make_graph("delete kept", steps=1))
    assert requests.post(url + "/api/queue", json={"delete": [doomed, running]}, timeout=5).text == ""
    snapshot = requests.get(url + "/queue", timeout=5).json()
    assert [item[1] for item in snapshot["queue_running"]] == [running]
    assert [item[1] for item in snapshot["queue_pending"]] == [kept]
    assert wait_history(url, kept)["status"]["status_str"] == "success"
    assert wait_history(url, running)["status"]["status_str"] == "success"
    assert requests.get(f"{url}/history/{doomed}", timeout=5).json() == {}

    blocker = queue(url, make_graph("clear blocker", steps=5))
    wait_running(url, blocker)
    cleared = [queue(url, make_graph(f"clear {i}", steps=1)) for i in range(2)]
    requests.post(url + "/queue", json={"clear": True}, timeout=5)
    snapshot = requests.get(url + "/queue", timeout=5).json()
    assert len(snapshot["queue_running"]) == 1 and snapshot["queue_pending"] == []
    wait_history(url, blocker)
    assert all(requests.get(f"{url}/history/{pid}", timeout=5).json() == {} for pid in cleared)


def test_it_interrupts_only_the_running_prompt_it_is_asked_to(simulator_factory):
    _, url = simulator_factory("--step-ms", "100")
    client = uuid.uuid4().hex
    with connect(ws_url(url, client)) as ws:
        recv_json(ws)
        target = queue(url, make_graph("interrupt target", steps=30), client_id=client)
        bystander = queue(url, make_graph("interrupt bystander", steps=2), client_id=client)
        wait_running(url, target)
        assert requests.post(url + "/interrupt", json={"prompt_id": bystander}, timeout=5).status_code == 200
        time.sleep(0.3)
        assert requests.get(url + "/queue", timeout=5).json()["queue_running"][0][1] == target
        requests.post(url + "/api/interrupt", json={"prompt_id": target}, timeout=5)
        messages = collect_until_done(ws, target)
    entry = wait_history(url, target)
    assert entry["status"]["status_str"] == "error" and entry["status"]["completed"] is False
    kind, data = entry["status"]["messages"][-1]
    assert kind == "execution_interrupted"
    assert (data["node_id"], data["node_type"], data["prompt_id"]) == ("3", "KSampler", target)
    assert set(data["executed"]) == {"4", "5", "6", "7"}
    assert entry["outputs"] == {}
    assert any(m["type"] == "execution_interrupted" for m in messages)
    assert max(m["data"]["value"] for m in messages if m["type"] == "progress") < 30
    assert wait_history(url, bystander)["status"]["status_str"] == "success"

    # An empty body interrupts whatever runs; one sent while idle is forgotten.
    victim = queue(url, make_graph("interrupt global", steps=30))
    wait_running(url, victim)
    requests.post(url + "/interrupt", timeout=5)
    assert wait_history(url, victim)["status"]["messages"][-1][0] == "execution_interrupted"
    requests.post(url + "/interrupt", data="", timeout=5)
    assert wait_history(url, queue(url, make_graph("after idle interrupt", steps=2)))["status"]["completed"] is True


def test_it_sends_execution_events_only_to_the_prompts_client(sim):
    mine, other = uuid.uuid4().hex, uuid.uuid4().hex
    with connect(ws_url(sim, mine)) as ws_mine, connect(ws_url(sim, other, "/api")) as ws_other:
        recv_json(ws_mine)
        recv_json(ws_other)
        prompt_id = queue(sim, make_graph("routing lynx"), client_id=mine)
        assert any(m["type"] == "executed" for m in collect_until_done(ws_mine, prompt_id))
        time.sleep(0.2)
        seen = []
        while True:
            try:
                seen.append(recv_json(ws_other, timeout=0.2)["type"])
            except TimeoutError:
                break
        assert set(seen) == {"status"}

        # Without a client_id nobody gets executing/executed, but progress is broadcast.
        anonymous = queue(sim, make_graph("routing anonymous", steps=2))
        wait_history(sim, anonymous)
        time.sleep(0.2)
        broadcast = []
        while True:
            try:
                broadcast.append(recv_json(ws_other, timeout=0.2))
            except TimeoutError:
                break
        kinds = {m["type"] for m in broadcast}
        assert {"status", "progress", "progress_state"} <= kinds
        assert not kinds & {"executing", "executed", "execution_start", "execution_success"}


def test_it_answers_feature_flags_and_invents_a_sid(sim):
    with connect(ws_url(sim)) as ws:
        sid = recv_json(ws)["data"]["sid"]
        assert len(sid) == 32 and int(sid, 16) >= 0
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        assert recv_json(ws) == {"type": "feature_flags",
                                 "data": {"supports_preview_metadata": True, "max_upload_size": 104857600}}


def test_it_tells_a_reconnecting_client_which_node_is_executing(simulator_factory):
    _, url = simulator_factory("--step-ms", "100")
    client = uuid.uuid4().hex
    with connect(ws_url(url, client)) as ws:
        recv_json(ws)
        prompt_id = queue(url, make_graph("reconnect seal", steps=8), client_id=client)
        while recv_json(ws)["type"] != "progress":
            pass
    with connect(ws_url(url, client)) as ws:
        assert recv_json(ws)["type"] == "status"
        assert recv_json(ws) == {"type": "executing", "data": {"node": "3"}}
        rest = collect_until_done(ws, prompt_id)
    assert any(m["type"] == "progress" for m in rest)
    assert any(m["type"] == "execution_success" for m in rest)


def test_it_runs_out_of_memory_at_batch_8_when_vram_is_30_gb(simulator_factory):
    proc, url = simulator_factory("--vram-gb", "30")
    assert requests.get(url + "/system_stats", timeout=5).json()["devices"][0]["vram_total"] == 30 * 1024**3
    fits = wait_history(url, queue(url, make_graph("oom fits", batch=4, prefix="oom/fits")))
    assert fits["status"]["status_str"] == "success" and len(fits["outputs"]["9"]["images"]) == 4
    client = uuid.uuid4().hex
    with connect(ws_url(url, client)) as ws:
        recv_json(ws)
        prompt_id = queue(url, make_graph("oom too big", batch=8, prefix="oom/big"), client_id=client)
        messages = collect_until_done(ws, prompt_id)
    error = next(m["data"] for m in messages if m["type"] == "execution_error")
    entry = wait_history(url, prompt_id)
    assert entry["status"] == {"status_str": "error", "completed": False, "messages": entry["status"]["messages"]}
    assert entry["status"]["messages"][-1] == ["execution_error", error]
    assert error["exception_type"] == "torch.OutOfMemoryError"
    assert error["exception_message"].startswith("Allocation on device \nThis error means you ran out of memory")
    assert (error["node_id"], error["node_type"]) == ("3", "KSampler")
    assert error["current_inputs"]["seed"] == [1] and error["traceback"]
    assert set(error["current_outputs"]) == set(make_graph("x"))
    assert entry["outputs"] == {}
    assert not (Path(proc.extra["output_dir"]) / "oom" / "big_00001_.png").exists()


def test_it_spends_the_model_load_time_only_when_the_checkpoint_changes(simulator_factory):
    _, url = simulator_factory("--model-load-ms", "400", "--step-ms", "1")

    def duration(graph: dict) -> float:
        messages = wait_history(url, queue(url, graph))["status"]["messages"]
        return (messages[-1][1]["timestamp"] - messages[0][1]["timestamp"]) / 1000

    assert duration(make_graph("load a", ckpt=CKPT)) >= 0.4
    assert duration(make_graph("load b", ckpt=CKPT)) < 0.3
    assert duration(make_graph("load c", ckpt="pixel_art_xl.safetensors")) >= 0.4
    stats = requests.get(url + "/sim/stats", timeout=5).json()
    assert stats["checkpoint_loads"] == 2 and stats["executed"] == 3
    assert stats["busy_seconds"] >= 0.8 and stats["first_start"] <= stats["last_end"]


def test_it_fails_at_run_time_when_the_prefix_escapes_the_output_folder(sim):
    response = post(sim, make_graph("escape", prefix="../../escaped"))
    assert response.status_code == 200 and response.json()["node_errors"] == {}
    kind, error = wait_history(sim, response.json()["prompt_id"])["status"]["messages"][-1]
    assert kind == "execution_error"
    assert error["exception_type"] == "Exception" and error["node_type"] == "SaveImage"
    assert "Saving image outside the output folder is not allowed." in error["exception_message"]


def test_it_refuses_a_request_whose_origin_is_not_its_host(sim):
    port = sim.rsplit(":", 1)[1]
    assert requests.post(sim + "/prompt", json={}, headers={"Origin": "http://example.com"}, timeout=5).status_code == 403
    same = requests.get(sim + "/queue", headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=5)
    assert same.status_code == 200


def test_it_guards_view_like_comfyui(sim):
    image = wait_history(sim, queue(sim, make_graph("view guard", prefix="guard/img")))["outputs"]["9"]["images"][0]
    ok = requests.get(sim + "/view", params=image, timeout=5)
    assert ok.status_code == 200 and ok.headers["Content-Type"] == "image/png" and ok.content[:4] == b"\x89PNG"
    assert ok.headers["Content-Disposition"] == f'filename="{image["filename"]}"'
    annotated = {"filename": image["filename"] + " [output]", "subfolder": "guard"}
    assert requests.get(sim + "/api/view", params=annotated, timeout=5).status_code == 200
    codes = {
        "dotdot": {"filename": "../secret.png"}, "absolute": {"filename": "/etc/passwd"},
        "escape": {"filename": image["filename"], "subfolder": "../../etc"},
        "type": {"filename": image["filename"], "subfolder": "guard", "type": "bogus"},
        "missing": {"filename": "nope.png"}, "nofilename": {},
    }
    got = {name: requests.get(sim + "/view", params=params, timeout=5).status_code for name, params in codes.items()}
    assert got == {"dotdot": 400, "absolute": 400, "escape": 403, "type": 400, "missing": 404, "nofilename": 404}


def test_it_pages_deletes_and_clears_history(simulator):
    ids = [queue(simulator, make_graph(f"history {i}", steps=1)) for i in range(3)]
    for prompt_id in ids:
        wait_history(simulator, prompt_id)
    assert list(requests.get(simulator + "/history", timeout=5).json()) == ids
    assert list(requests.get(simulator + "/history?max_items=2", timeout=5).json()) == ids[1:]
    assert list(requests.get(simulator + "/history?max_items=1&offset=1", timeout=5).json()) == ids[1:2]
    assert requests.post(simulator + "/history", json={"delete": [ids[0]]}, timeout=5).text == ""
    assert requests.get(f"{simulator}/history/{ids[0]}", timeout=5).json() == {}
    requests.post(simulator + "/api/history", json={"clear": True}, timeout=5)
    assert requests.get(simulator + "/history", timeout=5).json() == {}
    assert requests.get(simulator + "/sim/stats", timeout=5).json()["executed"] == 3


def test_it_runs_the_projects_sample_workflow(sim):
    graph = json.loads((Path(__file__).resolve().parent.parent / "workflows" / "batch_optimized.json").read_text())
    graph["5"]["inputs"].update(width=64, height=64, batch_size=2)
    graph["3"]["inputs"]["steps"] = 2
    entry = wait_history(sim, queue(sim, graph))
    assert entry["status"]["status_str"] == "success"
    assert [i["subfolder"] for i in entry["outputs"]["9"]["images"]] == ["dgxpixels", "dgxpixels"]


def test_it_chains_loras_into_an_advanced_sampler_and_previews_to_temp(sim):
    graph = make_graph("lora chain")
    graph["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "strength_model": 0.8,
                                                          "strength_clip": 1.0, "lora_name": "pixel_art_lora.safetensors"}}
    graph["11"] = {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["10", 0], "strength_model": 0.5,
                                                                   "lora_name": "pixel-art-xl.safetensors"}}
    graph["6"]["inputs"]["clip"] = ["10", 1]
    graph["3"] = {"class_type": "KSamplerAdvanced", "inputs": {
        "model": ["11", 0], "add_noise": "enable", "noise_seed": 5, "steps": 10, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "karras", "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0],
        "start_at_step": 2, "end_at_step": 6, "return_with_leftover_noise": "disable"}}
    graph["12"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    client = uuid.uuid4().hex
    with connect(ws_url(sim, client)) as ws:
        recv_json(ws)
        prompt_id = queue(sim, graph, client_id=client)
        messages = collect_until_done(ws, prompt_id)
    assert [m["data"]["value"] for m in messages if m["type"] == "progress"] == [1, 2, 3, 4]
    outputs = wait_history(sim, prompt_id)["outputs"]
    preview = outputs["12"]["images"][0]
    assert preview["type"] == "temp" and preview["filename"].startswith("ComfyUI_temp_")
    assert Image.open(io.BytesIO(view(sim, preview))).size == (64, 64)
    assert outputs["9"]["images"][0]["type"] == "output"

    graph["10"]["inputs"]["lora_name"] = "missing_lora.safetensors"
    error = node_errors_for(sim, graph)["10"]["errors"][0]
    assert error["type"] == "value_not_in_list"
    assert error["details"] == ("lora_name: 'missing_lora.safetensors' not in "
                                "['pixel_art_lora.safetensors', 'pixel-art-xl.safetensors']")


def test_it_unregisters_a_reused_client_id_when_the_older_socket_closes_as_comfyui_does(sim):
    # The trap a client must avoid: open the new socket only after closing the old one.
    client = uuid.uuid4().hex
    with connect(ws_url(sim, client)) as old, connect(ws_url(sim, client)) as new:
        recv_json(old)
        assert recv_json(new)["data"]["sid"] == client
        old.close()
        time.sleep(0.1)
        prompt_id = queue(sim, make_graph("socket trap"), client_id=client)
        assert wait_history(sim, prompt_id)["status"]["status_str"] == "success"
        time.sleep(0.2)
        with pytest.raises(TimeoutError):  # not even the status broadcasts reach it any more
            recv_json(new, timeout=0.3)


def test_it_draws_visibly_different_sprites_per_cfg_and_sampler_and_the_same_for_the_same_inputs():
    from batches.comfyui_sim import sprites

    def draw(**changes):
        recipe = sprites.Recipe(**{"text": "compare knight", "negative": "", "seed": 3, "model": "sd_xl_base_1.0",
                                   "steps": 20, "cfg": 7.0, "sampler_name": "euler_ancestral",
                                   "scheduler": "karras", "denoise": 1.0, **changes})
        return sprites.draw_sprite(recipe, 0, 128, 128)

    def saturation(image) -> float:
        return sum(image.convert("HSV").getchannel("S").getdata()) / (128 * 128)

    base = draw()
    assert draw().tobytes() == base.tobytes()  # deterministic
    assert saturation(draw(cfg=12.0)) > saturation(base) > saturation(draw(cfg=3.0))  # CFG: colour strength
    samplers = {draw(sampler_name=name).tobytes() for name in ("euler_ancestral", "dpmpp_2m", "ddim", "uni_pc")}
    assert len(samplers) >= 3  # the sampler changes the figure
    assert draw(model="pixel_art_xl").tobytes() != base.tobytes()  # the checkpoint changes the palette


# --- live previews (--preview-method) ---------------------------------------------------------

def _frames_until_done(ws, prompt_id: str, timeout: float = 15.0) -> list:
    """Every frame (dict for text, bytes for binary) up to `executing {node: null}` of this prompt."""
    frames = []
    deadline = time.monotonic() + timeout
    while True:
        raw = ws.recv(timeout=max(0.1, deadline - time.monotonic()))
        if isinstance(raw, bytes):
            frames.append(raw)
            continue
        message = json.loads(raw)
        frames.append(message)
        if (message["type"] == "executing" and message["data"].get("node") is None
                and message["data"].get("prompt_id") == prompt_id):
            return frames


def test_it_sends_a_jpeg_preview_after_each_step_only_with_a_preview_method(simulator_factory, sim):
    import struct

    _, url = simulator_factory("--preview-method", "auto", step_ms=5)
    legacy, flagged = uuid.uuid4().hex, uuid.uuid4().hex
    with connect(ws_url(url, legacy)) as ws_legacy, connect(ws_url(url, flagged)) as ws_flagged:
        recv_json(ws_legacy)
        recv_json(ws_flagged)
        ws_flagged.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        assert recv_json(ws_flagged)["type"] == "feature_flags"
        first = queue(url, make_graph("preview legacy owl", steps=3, prefix="prev/a"), client_id=legacy)
        old = _frames_until_done(ws_legacy, first)
        second = queue(url, make_graph("preview flagged owl", steps=3, prefix="prev/b"), client_id=flagged)
        new = _frames_until_done(ws_flagged, second)

    # Type 1 (uint32 format 1 = JPEG, then the bytes) right after each progress message.
    kinds = [("bin" if isinstance(f, bytes) else f["type"]) for f in old if isinstance(f, bytes) or f["type"] == "progress"]
    assert kinds == ["progress", "bin"] * 3
    frame = next(f for f in old if isinstance(f, bytes))
    assert struct.unpack(">II", frame[:8]) == (1, 1) and frame[8:10] == b"\xff\xd8"
    # Type 4 for the client that asked for metadata: length, JSON naming the prompt, then the JPEG.
    frame = next(f for f in new if isinstance(f, bytes))
    kind, size = struct.unpack(">II", frame[:8])
    meta = json.loads(frame[8:8 + size])
    assert kind == 4 and meta["prompt_id"] == second and meta["image_type"] == "image/jpeg"
    assert frame[8 + size:8 + size + 2] == b"\xff\xd8"

    # ComfyUI's default (--preview-method none): no binary frames at all.
    client = uuid.uuid4().hex
    with connect(ws_url(sim, client)) as ws:
        recv_json(ws)
        prompt_id = queue(sim, make_graph("preview none owl", steps=3, prefix="prev/c"), client_id=client)
        assert not any(isinstance(f, bytes) for f in _frames_until_done(ws, prompt_id))
