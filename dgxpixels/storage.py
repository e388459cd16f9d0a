"""The static files storage: WhiteNoise's hashed, compressed copies once they are collected."""
from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticFilesStorage(CompressedManifestStaticFilesStorage):
    """`manage.py collectstatic` writes hashed, compressed copies (app.3f2a9c0d1e2b.css and its .gz)
    and their manifest (STATIC_ROOT/staticfiles.json); `{% static %}` then names the hashed copies,
    which WhiteNoise serves with far-future cache headers.

    Until a manifest exists (a fresh checkout, the tests) names stay as they are and WhiteNoise
    serves the files from the app folders (WHITENOISE_USE_FINDERS), so pages still get their CSS
    and JS. Once one exists, a file missing from it is an error: collectstatic after every upgrade.
    """

    def stored_name(self, name: str) -> str:
        if not self.hashed_files:  # nothing collected (yet)
            return name
        return super().stored_name(name)
