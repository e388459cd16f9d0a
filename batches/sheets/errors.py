"""What the sheets library raises: one message that names the field and says what to do."""
from __future__ import annotations


class SheetError(ValueError):
    """A sheet, atlas, tileset or animation cannot be made as asked; retrying will not help."""
