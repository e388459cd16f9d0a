"""Workflows are data: loading API-format graphs and injecting parameters by following links."""
from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest
from django.conf import settings

from batches.profiles import get_profile
from batches.workflows import (
    PARAMETERS,
    GenerationParams,
    Workflow,
    WorkflowError,
    check_injectable,
    describe,
    inject,
    list_workflows,
    load_workflow,
)

FIXTURES = Path(__file__).parent / "fixtures" / "workflows"

EVERYTHING = GenerationParams(
    positive="pixel art knight", negative="blurry", seed=1234, steps=12, cfg=6.5, sampler="dpmpp_2m",
    scheduler="normal", denoise=0.75, width=512, height=768, batch_size=4, checkpoint="other.safetensors",
    lora="pixel_lora.safetensors", lora_strength_model=0.6, lora_strength_clip=0.4, filename_prefix="dgxpixels/job7",
)


def default_graph() -> dict:
    return load_workflow("batch_optimized").graph


def write_workflow(tmp_path: Path, name: str, content: str | dict) -> Path:
    text = content if isinstance(content, str) else json.dumps(content, indent=2)
    (tmp_path / "workflows").mkdir(exist_ok=True)
    (tmp_path / "workflows" / name).write_text(text)
    return tmp_path / "workflows"


def param_of(problem: str) -> str:
    return re.search(r"so '(\w+)' cannot be set", problem).group(1)


def problems_for(graph: dict, source: str = "workflows/test.json", **params) -> list[str]:
    return check_injectable(graph, params, source=source)


# --- loading -------------------------------------------------------------------------------


def test_it_lists_and_loads_the_shipped_workflow_by_name_with_or_without_json():
    assert "batch_optimized" in list_workflows()
    workflow = load_workflow("batch_optimized")
    assert workflow.name == "batch_optimized"
    assert workflow.source == "workflows/batch_optimized.json"
    assert workflow.path == (Path(settings.WORKFLOWS_DIR) / "batch_optimized.json").resolve()
    assert load_workflow("batch_optimized.json").graph == workflow.graph


def test_it_ships_an_sdxl_graph_with_comfyuis_default_node_ids():
    graph = default_graph()
    assert {node_id: node["class_type"] for node_id, node in graph.items()} == {
        "3": "KSampler", "4": "CheckpointLoaderSimple", "5": "EmptyLatentImage", "6": "CLIPTextEncode",
        "7": "CLIPTextEncode", "8": "VAEDecode", "9": "SaveImage"}
    assert graph["4"]["inputs"]["ckpt_name"] == "sd_xl_base_1.0.safetensors"
    assert graph["5"]["inputs"] == {"width": 1024, "height": 1024, "batch_size": 8}
    assert graph["9"]["inputs"]["filename_prefix"] == "dgxpixels/sprite"
    assert all(node["_meta"]["title"] for node in graph.values())


def test_it_refuses_a_name_that_escapes_the_workflows_folder(tmp_path):
    (tmp_path / "secret.json").write_text("{}")
    directory = write_workflow(tmp_path, "ok.json", {})
    for name in ("../secret", "../secret.json", str(tmp_path / "secret.json")):
        with pytest.raises(WorkflowError, match="outside the workflows folder"):
            load_workflow(name, directory=directory)


def test_it_refuses_a_workflow_that_does_not_exist_listing_the_choices():
    with pytest.raises(WorkflowError, match=r"workflows/nope.json does not exist: choose one of .*batch_optimized"):
        load_workflow("nope")


def test_it_refuses_broken_json_with_line_and_column(tmp_path):
    directory = write_workflow(tmp_path, "broken.json", '{\n  "3": {"class_type": "KSampler",\n  }\n}')
    with pytest.raises(WorkflowError) as info:
        load_workflow("broken", directory=directory)
    assert "workflows/broken.json is not valid JSON (line 3, column 3" in str(info.value)
    assert "Export (API)" in str(info.value)


def test_it_refuses_a_ui_format_export_saying_how_to_export_the_api_format(tmp_path):
    ui = {"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}], "links": [[1, 4, 0, 3, 0, "MODEL"]]}
    directory = write_workflow(tmp_path, "ui.json", ui)
    with pytest.raises(WorkflowError) as info:
        load_workflow("ui", directory=directory)
    assert str(info.value) == ("workflows/ui.json: this is a UI-format workflow; in ComfyUI use 'Export (API)' "
                               "and save that file instead")


def test_it_refuses_a_top_level_that_is_not_an_object(tmp_path):
    directory = write_workflow(tmp_path, "list.json", "[1, 2]")
    with pytest.raises(WorkflowError, match=r"workflows/list.json is not an API-format graph .*Export \(API\)"):
        load_workflow("list", directory=directory)


def test_it_refuses_a_node_without_class_type(tmp_path):
    graph = default_graph()
    del graph["5"]["class_type"]
    directory = write_workflow(tmp_path, "noclass.json", graph)
    with pytest.raises(WorkflowError, match=r"workflows/noclass.json: node '5' has no class_type.*Export \(API\)"):
        load_workflow("noclass", directory=directory)


def test_it_refuses_a_link_to_a_missing_node(tmp_path):
    graph = default_graph()
    graph["3"]["inputs"]["latent_image"] = ["55", 0]
    directory = write_workflow(tmp_path, "dangling.json", graph)
    with pytest.raises(WorkflowError) as info:
        load_workflow("dangling", directory=directory)
    assert ("workflows/dangling.json: node '3' (KSampler) input 'latent_image' links to node '55', "
            "which is not in the graph") in str(info.value)


def test_it_refuses_a_graph_without_an_output_node(tmp_path):
    graph = default_graph()
    del graph["9"]
    directory = write_workflow(tmp_path, "nooutput.json", graph)
    with pytest.raises(WorkflowError, match=r"workflows/nooutput.json has no output node .*add a SaveImage"):
        load_workflow("nooutput", directory=directory)


def test_it_reports_every_structural_problem_at_once(tmp_path):
    graph = default_graph()
    del graph["5"]["class_type"]
    graph["3"]["inputs"]["model"] = ["44", 0]
    with pytest.raises(WorkflowError) as info:
        inject(graph, {"steps": 3}, source="workflows/two.json")
    assert len(info.value.problems) == 2
    assert str(info.value).startswith("workflows/two.json has 2 problems:")


# --- injection into the shipped graph ------------------------------------------------------


def test_it_puts_every_parameter_into_the_right_node_of_the_shipped_graph():
    graph = inject(default_graph(), EVERYTHING, source="workflows/batch_optimized.json")
    sampler = graph["3"]["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (1234, 12, 6.5)
    assert (sampler["sampler_name"], sampler["scheduler"], sampler["denoise"]) == ("dpmpp_2m", "normal", 0.75)
    assert graph["6"]["inputs"]["text"] == "pixel art knight"
    assert graph["7"]["inputs"]["text"] == "blurry"
    assert graph["5"]["inputs"] == {"width": 512, "height": 768, "batch_size": 4}
    assert graph["4"]["inputs"]["ckpt_name"] == "other.safetensors"
    assert graph["9"]["inputs"]["filename_prefix"] == "dgxpixels/job7"
    lora = graph["10"]
    assert lora["class_type"] == "LoraLoader"
    assert lora["inputs"] == {"lora_name": "pixel_lora.safetensors", "strength_model": 0.6, "strength_clip": 0.4,
                              "model": ["4", 0], "clip": ["4", 1]}


def test_it_leaves_values_that_are_none_as_in_the_workflow():
    original = default_graph()
    graph = inject(original, GenerationParams(seed=5), source="workflows/batch_optimized.json")
    expected = copy.deepcopy(original)
    expected["3"]["inputs"]["seed"] = 5
    assert graph == expected


def test_it_never_mutates_the_original_graph():
    original = default_graph()
    snapshot = copy.deepcopy(original)
    inject(original, EVERYTHING, source="workflows/batch_optimized.json")
    assert original == snapshot


def test_it_takes_a_plain_dict_and_a_loaded_workflow():
    workflow = load_workflow("batch_optimized")
    assert workflow.inject({"steps": 9})["3"]["inputs"]["steps"] == 9
    assert workflow.check({"steps": 9}) == []


def test_it_builds_parameters_from_a_profile():
    params = GenerationParams.from_profile(get_profile("quality"), seed=3)
    graph = load_workflow("batch_optimized").inject(params)
    assert graph["5"]["inputs"]["batch_size"] == 1
    assert graph["3"]["inputs"]["steps"] == 30
    assert graph["3"]["inputs"]["sampler_name"] == "dpmpp_2m"
    assert graph["3"]["inputs"]["seed"] == 3


def test_it_describes_what_the_shipped_graph_can_take():
    info = describe(default_graph())
    assert set(info) == set(PARAMETERS)
    assert info["steps"] == 20 and info["batch_size"] == 8 and info["lora"] is None
    assert info["checkpoint"] == "sd_xl_base_1.0.safetensors"


# --- a differently numbered graph ------------------------------------------------------------


def advanced() -> Workflow:
    return load_workflow("sdxl_advanced", directory=FIXTURES)


def test_it_follows_links_in_a_differently_numbered_graph_with_ksampleradvanced():
    workflow = advanced()
    params = dataclasses.replace(EVERYTHING, denoise=None)
    graph = workflow.inject(params)
    sampler = graph["10"]["inputs"]
    assert (sampler["noise_seed"], sampler["steps"], sampler["cfg"]) == (1234, 12, 6.5)
    assert "seed" not in sampler
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("dpmpp_2m", "normal")
    # The negative encoder comes first in the file and sits behind a pass-through node.
    assert graph["pos"]["inputs"]["text"] == "pixel art knight"
    assert graph["neg"]["inputs"]["text"] == "blurry"
    assert graph["latent"]["inputs"] == {"width": 512, "height": 768, "batch_size": 4}
    assert graph["ckpt"]["inputs"]["ckpt_name"] == "other.safetensors"
    assert graph["30"]["inputs"]["filename_prefix"] == "dgxpixels/job7"


def test_it_reuses_an_existing_lora_loader_instead_of_adding_one():
    workflow = advanced()
    graph = workflow.inject({"lora": "new.safetensors", "lora_strength_model": 0.5})
    assert graph["lora"]["inputs"] == {"lora_name": "new.safetensors", "strength_model": 0.5, "strength_clip": 0.7,
                                       "model": ["ckpt", 0], "clip": ["ckpt", 1]}
    assert len(graph) == len(workflow.graph)
    assert workflow.inject({"lora_strength_clip": 0.2})["lora"]["inputs"]["strength_clip"] == 0.2


def test_it_refuses_denoise_on_ksampleradvanced_naming_parameter_and_file():
    problems = advanced().check({"denoise": 0.5})
    assert problems == ["workflows/sdxl_advanced.json uses a KSamplerAdvanced (node '10'), which has no denoise "
                        "input, so 'denoise' cannot be set: use a KSampler or leave denoise empty"]


def test_it_describes_the_advanced_graph_without_denoise():
    info = advanced().describe()
    assert "denoise" not in info
    assert info["seed"] == 1 and info["positive"] == "a knight" and info["negative"] == "ugly, blurry"
    assert info["lora"] == "old_style.safetensors"


# --- LoRA insertion ------------------------------------------------------------------------


def test_it_inserts_a_lora_loader_before_every_consumer_of_the_checkpoint_model_and_clip():
    graph = default_graph()
    # Another MODEL consumer on the path and a CLIP consumer off it: both must move to the LoRA.
    graph["20"] = {"class_type": "ModelSamplingDiscrete", "inputs": {"sampling": "eps", "zsnr": False,
                                                                   "model": ["4", 0]}}
    graph["3"]["inputs"]["model"] = ["20", 0]
    graph["21"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}}
    new = inject(graph, {"lora": "pixel.safetensors"}, source="workflows/x.json")
    assert set(new) - set(graph) == {"22"}
    lora = new["22"]
    assert lora["class_type"] == "LoraLoader"
    assert lora["inputs"] == {"lora_name": "pixel.safetensors", "strength_model": 1.0, "strength_clip": 1.0,
                              "model": ["4", 0], "clip": ["4", 1]}
    assert new["20"]["inputs"]["model"] == ["22", 0]
    assert new["3"]["inputs"]["model"] == ["20", 0]
    assert new["6"]["inputs"]["clip"] == ["22", 1]
    assert new["7"]["inputs"]["clip"] == ["22", 1]
    assert new["21"]["inputs"]["clip"] == ["22", 1]
    assert new["8"]["inputs"]["vae"] == ["4", 2]  # the VAE output stays on the checkpoint
    consumers = [(node_id, name) for node_id, node in new.items() for name, value in node["inputs"].items()
                 if value in (["4", 0], ["4", 1])]
    assert consumers == [("22", "model"), ("22", "clip")]


def test_it_picks_an_unused_id_for_an_inserted_lora_in_a_graph_with_named_ids(tmp_path):
    graph = advanced().graph
    del graph["lora"]
    for node in graph.values():
        for name, value in node["inputs"].items():
            if value == ["lora", 0] or value == ["lora", 1]:
                node["inputs"][name] = ["ckpt", value[1]]
    new = inject(graph, {"lora": "x.safetensors"}, source="workflows/sdxl_advanced.json")
    assert new["31"]["class_type"] == "LoraLoader"
    assert new["10"]["inputs"]["model"] == ["31", 0]
    assert new["pos"]["inputs"]["clip"] == ["31", 1]


def test_it_refuses_lora_strengths_without_a_lora_when_there_is_no_loader():
    problems = problems_for(default_graph(), lora_strength_model=0.5)
    assert problems == ["workflows/test.json has no LoraLoader, so 'lora_strength_model' cannot be set without a "
                        "LoRA: choose a lora too, or leave lora_strength_model empty"]


def test_it_refuses_a_lora_when_two_loaders_make_it_ambiguous():
    graph = advanced().graph
    graph["lora2"] = {"class_type": "LoraLoader", "inputs": {"lora_name": "b", "strength_model": 1.0,
                                                             "strength_clip": 1.0, "model": ["lora", 0],
                                                             "clip": ["lora", 1]}}
    graph["10"]["inputs"]["model"] = ["lora2", 0]
    problems = problems_for(graph, "workflows/sdxl_advanced.json", lora="c")
    assert len(problems) == 1
    assert "workflows/sdxl_advanced.json has 2 LoraLoader nodes" in problems[0] and "'lora'" in problems[0]


# --- refusals for parameters the graph has no node for ----------------------------------------


def test_it_refuses_batch_size_without_an_empty_latent_image_naming_parameter_and_file():
    graph = default_graph()
    graph["5"] = {"class_type": "LoadLatent", "inputs": {"latent": "x.latent"}}
    problems = problems_for(graph, "workflows/foo.json", batch_size=4)
    assert problems == ["workflows/foo.json has no EmptyLatentImage node linked to the sampler's latent_image, "
                        "so 'batch_size' cannot be set: add one or leave batch_size empty"]
    assert problems_for(graph, "workflows/foo.json", batch_size=None) == []


def test_it_refuses_a_filename_prefix_when_there_is_only_a_preview():
    graph = default_graph()
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    assert problems_for(graph, filename_prefix="x") == [
        "workflows/test.json has no SaveImage node, so 'filename_prefix' cannot be set: add one or leave "
        "filename_prefix empty"]


def test_it_refuses_prompts_when_the_sampler_has_no_text_encoder():
    graph = default_graph()
    # Flux-style: the negative is zeroed out, so its text would never reach the sampler.
    graph["70"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["7", 0]}}
    graph["3"]["inputs"]["negative"] = ["70", 0]
    problems = problems_for(graph, positive="a", negative="b")
    assert problems == ["workflows/test.json has no CLIPTextEncode linked to the sampler's negative input, so "
                        "'negative' cannot be set: wire one in or leave negative empty"]


def test_it_refuses_prompts_when_positive_and_negative_share_one_encoder():
    graph = default_graph()
    graph["3"]["inputs"]["negative"] = ["6", 0]
    del graph["7"]
    problems = problems_for(graph, positive="a")
    assert len(problems) == 1 and "'positive'" in problems[0] and "same text encoder (node '6')" in problems[0]


def test_it_refuses_sampler_parameters_when_no_sampler_feeds_the_output():
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    problems = problems_for(graph, steps=3, seed=1, checkpoint="c")
    assert len(problems) == 3
    assert all("workflows/test.json has no KSampler or KSamplerAdvanced" in p for p in problems)
    assert {param_of(p) for p in problems} == {"steps", "seed", "checkpoint"}
    assert problems_for(graph, filename_prefix="ok") == []


def test_it_refuses_a_checkpoint_when_the_model_comes_from_elsewhere():
    graph = default_graph()
    graph["30"] = {"class_type": "UNETLoader", "inputs": {"unet_name": "u", "weight_dtype": "default"}}
    graph["3"]["inputs"]["model"] = ["30", 0]
    problems = problems_for(graph, checkpoint="c", lora="l")
    assert [param_of(p) for p in problems] == ["checkpoint", "lora"]
    assert all(p.startswith("workflows/test.json has no CheckpointLoaderSimple") for p in problems)


def test_it_refuses_bad_values_and_unknown_parameters_all_at_once():
    problems = problems_for(default_graph(), stpes=3, steps="twenty", cfg=True, width=0,
                            filename_prefix="../escape", sampler="")
    assert problems == [
        "workflows/test.json: 'stpes' is not a workflow parameter: did you mean 'steps'?",
        "workflows/test.json: 'steps' must be a whole number from 1 to 10000, got 'twenty': correct it or leave "
        "steps empty",
        "workflows/test.json: 'cfg' must be a number from 0 to 100, got True: correct it or leave cfg empty",
        "workflows/test.json: 'width' must be a whole number from 16 to 16384, got 0: correct it or leave width "
        "empty",
        "workflows/test.json: 'filename_prefix' must be a non-empty name that stays inside ComfyUI's output folder "
        "(no leading '/' or '..'), got '../escape': correct it or leave filename_prefix empty",
        "workflows/test.json: 'sampler' must be a non-empty name, got '': correct it or leave sampler empty",
    ]


def test_it_raises_workflow_error_with_every_problem_from_inject():
    graph = default_graph()
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["8", 0]}}
    with pytest.raises(WorkflowError) as info:
        inject(graph, {"filename_prefix": "x", "steps": 0}, source="workflows/foo.json")
    assert isinstance(info.value, ValueError)
    assert len(info.value.problems) == 2
    assert "'steps'" in str(info.value) and "'filename_prefix'" in str(info.value)
    assert "workflows/foo.json" in str(info.value)


def test_it_replaces_a_linked_seed_with_the_jobs_value():
    graph = default_graph()
    graph["40"] = {"class_type": "PrimitiveInt", "inputs": {"value": 1}}
    graph["3"]["inputs"]["seed"] = ["40", 0]
    assert describe(graph)["seed"] is None
    assert inject(graph, {"seed": 77}, source="workflows/x.json")["3"]["inputs"]["seed"] == 77


def test_it_keeps_literal_list_values_untouched():
    graph = default_graph()
    graph["6"]["inputs"]["extra"] = {"__value__": ["4", 1]}
    new = inject(graph, {"lora": "l.safetensors"}, source="workflows/x.json")
    assert new["6"]["inputs"]["extra"] == {"__value__": ["4", 1]}


def test_it_follows_a_controlnet_node_to_the_right_encoder_by_output_index():
    graph = default_graph()
    graph["50"] = {"class_type": "ControlNetApplyAdvanced",
                   "inputs": {"positive": ["6", 0], "negative": ["7", 0], "control_net": ["51", 0],
                              "image": ["52", 0], "strength": 1.0, "start_percent": 0.0, "end_percent": 1.0}}
    graph["51"] = {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "cn.safetensors"}}
    graph["52"] = {"class_type": "LoadImage", "inputs": {"image": "pose.png"}}
    # One node carries both: output 0 is its positive, output 1 its negative.
    graph["3"]["inputs"]["positive"] = ["50", 0]
    graph["3"]["inputs"]["negative"] = ["50", 1]
    new = inject(graph, {"positive": "p", "negative": "n"}, source="workflows/cn.json")
    assert (new["6"]["inputs"]["text"], new["7"]["inputs"]["text"]) == ("p", "n")
