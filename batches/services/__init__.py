"""Workflows across models and the outside world (ComfyUI, the disk, the channel layer)."""
