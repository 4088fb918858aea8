"""Demo scenes of the digests feature: what `make demo` shows of it."""

from __future__ import annotations

from bot.demo_scenes.base import Scene

SCENES: list[Scene] = []
