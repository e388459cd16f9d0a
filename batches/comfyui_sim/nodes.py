"""The node classes the simulator knows, declared as ComfyUI v0.3.64's nodes.py declares them.

INPUT_TYPES, RETURN_TYPES, categories, tooltips and min/max are copied from ComfyUI so that
/object_info, validation errors and coercion match. The combos use the legacy V1 encoding
`[[choices], {opts}]`. The `run` functions stand in for the real work: they pass small
descriptive objects along the graph, spend simulated time, and draw sprites at VAEDecode.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from PIL import Image

from . import sprites
from .files import get_save_image_path

MAX_RESOLUTION = 16384

# comfy/samplers.py KSampler.SAMPLERS / SCHEDULERS in v0.3.64.
KSAMPLER_NAMES = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece",
]
SAMPLERS = KSAMPLER_NAMES + ["ddim", "uni_pc", "uni_pc_bh2"]
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
              "linear_quadratic", "kl_optimal"]


class RunContext(Protocol):
    """What a node may ask of the executor (see executor.NodeContext)."""

    output_dir: str
    temp_dir: str

    def load_model(self, model: "SimModel") -> None: ...
    def allocate(self, batch_size: int) -> None: ...
    def sample_steps(self, total: int) -> None: ...


# --- the values that travel along links -------------------------------------------------------
# Their str() is what ends up in an execution_error's current_inputs, so they look like torch objects.

@dataclass(frozen=True)
class SimModel:
    ckpt_name: str
    loras: tuple[tuple[str, float], ...] = ()

    def describe(self) -> str:
        return self.ckpt_name + "".join(f"+{name}@{strength:g}" for name, strength in self.loras)

    def __str__(self) -> str:
        return f"<comfy.model_patcher.ModelPatcher object at 0x{id(self):x}>"


@dataclass(frozen=True)
class SimClip:
    ckpt_name: str
    loras: tuple[tuple[str, float], ...] = ()

    def __str__(self) -> str:
        return f"<comfy.sd.CLIP object at 0x{id(self):x}>"


@dataclass(frozen=True)
class SimVAE:
    ckpt_name: str

    def __str__(self) -> str:
        return f"<comfy.sd.VAE object at 0x{id(self):x}>"


@dataclass(frozen=True)
class Conditioning:
    text: str

    def __str__(self) -> str:
        return "[[tensor([[[...]]]), {'pooled_output': tensor([[...]])}]]"


@dataclass(frozen=True)
class LatentTensor:
    batch_size: int
    width: int  # in pixels, already a multiple of 8 (latents are width // 8 cells wide)
    height: int
    recipe: sprites.Recipe | None = None  # None: an empty latent nobody sampled

    def __str__(self) -> str:
        return f"tensor([[[[...]]]]) size=({self.batch_size}, 4, {self.height // 8}, {self.width // 8})"


@dataclass(frozen=True)
class ImageBatch:
    images: tuple[Image.Image, ...]

    def __str__(self) -> str:
        w, h = self.images[0].size if self.images else (0, 0)
        return f"tensor([[[[...]]]]) size=({len(self.images)}, {h}, {w}, 4)"


@dataclass(frozen=True)
class NodeResult:
    outputs: tuple[Any, ...]
    ui: dict | None = None


@dataclass(frozen=True)
class Catalog:
    checkpoints: list[str]
    loras: list[str]


@dataclass(frozen=True)
class NodeDef:
    name: str
    display_name: str
    category: str
    description: str
    input_types: Callable[[Catalog], dict]
    return_types: tuple[str, ...]
    run: Callable[..., NodeResult]
    return_names: tuple[str, ...] | None = None
    output_tooltips: tuple[str, ...] | None = None
    output_node: bool = False
    is_sampler: bool = False  # samplers report progress per step; other nodes take --node-ms
    extra_info: dict = field(default_factory=dict)  # e.g. {"deprecated": True}


# --- run functions ----------------------------------------------------------------------------

def _load_checkpoint(ctx: RunContext, ckpt_name: str) -> NodeResult:
    return NodeResult((SimModel(ckpt_name), SimClip(ckpt_name), SimVAE(ckpt_name)))


def _load_lora(ctx: RunContext, model: SimModel, clip: SimClip, lora_name: str, strength_model: float,
               strength_clip: float) -> NodeResult:
    if strength_model == 0 and strength_clip == 0:  # ComfyUI returns its inputs untouched
        return NodeResult((model, clip))
    return NodeResult((SimModel(model.ckpt_name, model.loras + ((lora_name, strength_model),)),
                       SimClip(clip.ckpt_name, clip.loras + ((lora_name, strength_clip),))))


def _load_lora_model_only(ctx: RunContext, model: SimModel, lora_name: str, strength_model: float) -> NodeResult:
    if strength_model == 0:
        return NodeResult((model,))
    return NodeResult((SimModel(model.ckpt_name, model.loras + ((lora_name, strength_model),)),))


def _encode(ctx: RunContext, clip: SimClip, text: str) -> NodeResult:
    return NodeResult((Conditioning(text),))


def _empty_latent(ctx: RunContext, width: int, height: int, batch_size: int) -> NodeResult:
    return NodeResult(({"samples": LatentTensor(batch_size, width // 8 * 8, height // 8 * 8)},))


def _sample(ctx: RunContext, *, model: SimModel, seed: int, steps: int, cfg: float, sampler_name: str,
            scheduler: str, positive: Conditioning, negative: Conditioning, latent_image: dict,
            denoise: float, run_steps: int) -> NodeResult:
    latent: LatentTensor = latent_image["samples"]
    ctx.load_model(model)
    ctx.allocate(latent.batch_size)  # may raise the simulated CUDA OOM
    ctx.sample_steps(run_steps)
    recipe = sprites.Recipe(text=positive.text, negative=negative.text, seed=seed, model=model.describe(),
                            steps=steps, cfg=cfg, sampler_name=sampler_name, scheduler=scheduler, denoise=denoise)
    out = dict(latent_image)
    out["samples"] = LatentTensor(latent.batch_size, latent.width, latent.height, recipe)
    return NodeResult((out,))


def _ksampler(ctx: RunContext, model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
              latent_image, denoise=1.0) -> NodeResult:
    return _sample(ctx, model=model, seed=seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                   scheduler=scheduler, positive=positive, negative=negative, latent_image=latent_image,
                   denoise=denoise, run_steps=steps)


def _ksampler_advanced(ctx: RunContext, model, add_noise, noise_seed, steps, cfg, sampler_name, scheduler,
                       positive, negative, latent_image, start_at_step, end_at_step,
                       return_with_leftover_noise) -> NodeResult:
    # ComfyUI slices the sigmas to [start, min(end, steps)]; the progress bar counts what is left.
    run_steps = max(0, min(end_at_step, steps) - start_at_step)
    return _sample(ctx, model=model, seed=noise_seed, steps=steps, cfg=cfg, sampler_name=sampler_name,
                   scheduler=scheduler, positive=positive, negative=negative, latent_image=latent_image,
                   denoise=1.0, run_steps=run_steps)


def _decode(ctx: RunContext, samples: dict, vae: SimVAE) -> NodeResult:
    latent: LatentTensor = samples["samples"]
    if latent.recipe is None:
        images = tuple(sprites.blank_image(latent.width, latent.height) for _ in range(latent.batch_size))
    else:
        images = tuple(sprites.draw_sprite(latent.recipe, i, latent.width, latent.height)
                       for i in range(latent.batch_size))
    return NodeResult((ImageBatch(images),))


def _save(images: ImageBatch, filename_prefix: str, prompt: dict | None, extra_pnginfo: dict | None, *,
          output_dir: str, kind: str, compress_level: int) -> NodeResult:
    """SaveImage.save_images, writing the simulated images with the same names and metadata."""
    width, height = images.images[0].size
    full_output_folder, filename, counter, subfolder, _ = get_save_image_path(filename_prefix, output_dir,
                                                                              width, height)
    results = []
    for batch_number, image in enumerate(images.images):
        file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        sprites.save_png(image, os.path.join(full_output_folder, file), prompt=prompt,
                         extra_pnginfo=extra_pnginfo, compress_level=compress_level)
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return NodeResult((), {"images": results})  # RETURN_TYPES is () in v0.3.64


def _save_image(ctx: RunContext, images: ImageBatch, filename_prefix: str = "ComfyUI", prompt: dict | None = None,
                extra_pnginfo: dict | None = None) -> NodeResult:
    return _save(images, filename_prefix, prompt, extra_pnginfo, output_dir=ctx.output_dir, kind="output",
                 compress_level=4)


def _preview_image(ctx: RunContext, images: ImageBatch, prompt: dict | None = None,
                   extra_pnginfo: dict | None = None) -> NodeResult:
    suffix = "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))
    return _save(images, "ComfyUI" + suffix, prompt, extra_pnginfo, output_dir=ctx.temp_dir, kind="temp",
                 compress_level=1)


# --- declarations -----------------------------------------------------------------------------

_SEED = {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True}
_CFG = {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}
_HIDDEN_PNG = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}


def _ksampler_inputs(c: Catalog) -> dict:
    return {"required": {
        "model": ("MODEL", {"tooltip": "The model used for denoising the input latent."}),
        "seed": ("INT", {**_SEED, "tooltip": "The random seed used for creating the noise."}),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000,
                          "tooltip": "The number of steps used in the denoising process."}),
        "cfg": ("FLOAT", {**_CFG, "tooltip": "The Classifier-Free Guidance scale balances creativity and adherence "
                          "to the prompt. Higher values result in images more closely matching the prompt however "
                          "too high values will negatively impact quality."}),
        "sampler_name": (SAMPLERS, {"tooltip": "The algorithm used when sampling, this can affect the quality, "
                                    "speed, and style of the generated output."}),
        "scheduler": (SCHEDULERS, {"tooltip": "The scheduler controls how noise is gradually removed to form the "
                                   "image."}),
        "positive": ("CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to include "
                                      "in the image."}),
        "negative": ("CONDITIONING", {"tooltip": "The conditioning describing the attributes you want to exclude "
                                      "from the image."}),
        "latent_image": ("LATENT", {"tooltip": "The latent image to denoise."}),
        "denoise": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                              "tooltip": "The amount of denoising applied, lower values will maintain the structure "
                              "of the initial image allowing for image to image sampling."}),
    }}


def _ksampler_advanced_inputs(c: Catalog) -> dict:
    return {"required": {
        "model": ("MODEL",), "add_noise": (["enable", "disable"],), "noise_seed": ("INT", dict(_SEED)),
        "steps": ("INT", {"default": 20, "min": 1, "max": 10000}), "cfg": ("FLOAT", dict(_CFG)),
        "sampler_name": (SAMPLERS,), "scheduler": (SCHEDULERS,), "positive": ("CONDITIONING",),
        "negative": ("CONDITIONING",), "latent_image": ("LATENT",),
        "start_at_step": ("INT", {"default": 0, "min": 0, "max": 10000}),
        "end_at_step": ("INT", {"default": 10000, "min": 0, "max": 10000}),
        "return_with_leftover_noise": (["disable", "enable"],),
    }}


def _lora_inputs(c: Catalog) -> dict:
    return {"required": {
        "model": ("MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}),
        "clip": ("CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}),
        "lora_name": (list(c.loras), {"tooltip": "The name of the LoRA."}),
        "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                     "tooltip": "How strongly to modify the diffusion model. This value can be "
                                     "negative."}),
        "strength_clip": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01,
                                    "tooltip": "How strongly to modify the CLIP model. This value can be negative."}),
    }}


NODE_DEFS: list[NodeDef] = [
    NodeDef("CheckpointLoaderSimple", "Load Checkpoint", "loaders",
            "Loads a diffusion model checkpoint, diffusion models are used to denoise latents.",
            lambda c: {"required": {"ckpt_name": (list(c.checkpoints),
                                                  {"tooltip": "The name of the checkpoint (model) to load."})}},
            ("MODEL", "CLIP", "VAE"), _load_checkpoint,
            output_tooltips=("The model used for denoising latents.", "The CLIP model used for encoding text prompts.",
                             "The VAE model used for encoding and decoding images to and from latent space.")),
    NodeDef("LoraLoader", "Load LoRA", "loaders",
            "LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are denoised "
            "such as applying styles. Multiple LoRA nodes can be linked together.",
            _lora_inputs, ("MODEL", "CLIP"), _load_lora,
            output_tooltips=("The modified diffusion model.", "The modified CLIP model.")),
    NodeDef("LoraLoaderModelOnly", "LoraLoaderModelOnly", "loaders", "",
            lambda c: {"required": {"model": ("MODEL",), "lora_name": (list(c.loras),),
                                    "strength_model": ("FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0,
                                                                 "step": 0.01})}},
            ("MODEL",), _load_lora_model_only),
    NodeDef("CLIPTextEncode", "CLIP Text Encode (Prompt)", "conditioning",
            "Encodes a text prompt using a CLIP model into an embedding that can be used to guide the diffusion "
            "model towards generating specific images.",
            lambda c: {"required": {
                "text": ("STRING", {"multiline": True, "dynamicPrompts": True, "tooltip": "The text to be encoded."}),
                "clip": ("CLIP", {"tooltip": "The CLIP model used for encoding the text."})}},
            ("CONDITIONING",), _encode,
            output_tooltips=("A conditioning containing the embedded text used to guide the diffusion model.",)),
    NodeDef("EmptyLatentImage", "Empty Latent Image", "latent",
            "Create a new batch of empty latent images to be denoised via sampling.",
            lambda c: {"required": {
                "width": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                                  "tooltip": "The width of the latent images in pixels."}),
                "height": ("INT", {"default": 512, "min": 16, "max": MAX_RESOLUTION, "step": 8,
                                   "tooltip": "The height of the latent images in pixels."}),
                "batch_size": ("INT", {"default": 1, "min": 1, "max": 4096,
                                       "tooltip": "The number of latent images in the batch."})}},
            ("LATENT",), _empty_latent, output_tooltips=("The empty latent image batch.",)),
    NodeDef("KSampler", "KSampler", "sampling",
            "Uses the provided model, positive and negative conditioning to denoise the latent image.",
            _ksampler_inputs, ("LATENT",), _ksampler, output_tooltips=("The denoised latent.",), is_sampler=True),
    NodeDef("KSamplerAdvanced", "KSampler (Advanced)", "sampling", "", _ksampler_advanced_inputs, ("LATENT",),
            _ksampler_advanced, is_sampler=True),
    NodeDef("VAEDecode", "VAE Decode", "latent", "Decodes latent images back into pixel space images.",
            lambda c: {"required": {"samples": ("LATENT", {"tooltip": "The latent to be decoded."}),
                                    "vae": ("VAE", {"tooltip": "The VAE model used for decoding the latent."})}},
            ("IMAGE",), _decode, output_tooltips=("The decoded image.",)),
    NodeDef("SaveImage", "Save Image", "image", "Saves the input images to your ComfyUI output directory.",
            lambda c: {"required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": "The prefix for the file to save. "
                                               "This may include formatting information such as %date:yyyy-MM-dd% or "
                                               "%Empty Latent Image.width% to include values from nodes."})},
                "hidden": dict(_HIDDEN_PNG)},
            (), _save_image, output_node=True),
    NodeDef("PreviewImage", "Preview Image", "image", "Saves the input images to your ComfyUI output directory.",
            lambda c: {"required": {"images": ("IMAGE",)}, "hidden": dict(_HIDDEN_PNG)},
            (), _preview_image, output_node=True),
]


def build_registry() -> dict[str, NodeDef]:
    return {node.name: node for node in NODE_DEFS}


def object_info(node: NodeDef, catalog: Catalog) -> dict:
    """server.py node_info() for a legacy (V1) node class."""
    inputs = node.input_types(catalog)
    info: dict[str, Any] = {
        "input": inputs,
        "input_order": {key: list(value.keys()) for key, value in inputs.items()},
        "output": list(node.return_types),
        "output_is_list": [False] * len(node.return_types),
        "output_name": list(node.return_names or node.return_types),
        "name": node.name,
        "display_name": node.display_name,
        "description": node.description,
        "python_module": "nodes",
        "category": node.category,
        "output_node": node.output_node,
    }
    if node.output_tooltips is not None:
        info["output_tooltips"] = list(node.output_tooltips)
    info.update(node.extra_info)
    return info
