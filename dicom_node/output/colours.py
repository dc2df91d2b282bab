"""The node's one colour per structure (RGB), light to import: the SEG's recommended display colours
(`output/seg.py`), the key images, and every pipeline's viewer overlays (their manifests) take them from here."""

from __future__ import annotations

RIGHT_LUNG_RGB = (0, 200, 80)
LEFT_LUNG_RGB = (40, 120, 255)
OPACITY_RGB = (255, 60, 0)
