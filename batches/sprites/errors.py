"""What finishing raises: one message that names the file or field and says what to do."""
from __future__ import annotations


class SpriteError(ValueError):
    """A sprite cannot be finished as asked (a bad image, a bad setting); retrying will not help."""


class PaletteError(SpriteError):
    """A palette name, file or colour list that cannot be used."""


class NoGridError(SpriteError):
    """No pixel grid was found in the image."""
