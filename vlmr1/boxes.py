"""Box geometry and the coordinate frames models answer in.

Every stored box is absolute pixels of the original image, ``[x1, y1, x2, y2]``.
A model answers in its own frame; conversion happens only here, at the edge,
so that scoring, training and evaluation agree on what a number means.

Frames:
- ``abs_original``: pixels of the original image.
- ``abs_resized``: pixels of the image the processor fed the model (Qwen2.5-VL:
  "smart resize" to multiples of 28 within min/max pixels).
- ``norm1000``: a 0..1000 grid over the image (Qwen2-VL, Qwen3-VL, InternVL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

FrameKind = Literal["abs_original", "abs_resized", "norm1000"]
FRAME_KINDS: tuple[str, ...] = ("abs_original", "abs_resized", "norm1000")

# Qwen2.5-VL processor defaults (preprocessor_config.json): patch 14, merge 2.
QWEN_FACTOR = 28
QWEN_MIN_PIXELS = 56 * 56
QWEN_MAX_PIXELS = 28 * 28 * 16384
NORM_GRID = 1000.0


def as_boxes(boxes) -> np.ndarray:
    """Return ``boxes`` as a float64 array of shape (n, 4)."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 4) if arr.size else arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (n, 4), got {arr.shape}")
    return arr


def xywh_to_xyxy(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def clip_boxes(boxes, width: float, height: float) -> np.ndarray:
    """Clip xyxy boxes to the image rectangle ``[0, width] x [0, height]``."""
    b = as_boxes(boxes).copy()
    b[:, 0::2] = np.clip(b[:, 0::2], 0.0, float(width))
    b[:, 1::2] = np.clip(b[:, 1::2], 0.0, float(height))
    return b


def box_area(boxes) -> np.ndarray:
    b = as_boxes(boxes)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def iou_pairwise(a, b) -> np.ndarray:
    """IoU of ``a[i]`` with ``b[i]`` (xyxy). Degenerate or inverted boxes score 0."""
    a, b = as_boxes(a), as_boxes(b)
    if a.shape != b.shape:
        raise ValueError(f"pairwise IoU needs equal shapes, got {a.shape} and {b.shape}")
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = box_area(a) + box_area(b) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def iou_matrix(a, b) -> np.ndarray:
    """IoU of every box in ``a`` (n, 4) with every box in ``b`` (m, 4): shape (n, m)."""
    a, b = as_boxes(a), as_boxes(b)
    iw = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


def smart_resize(
    height: int,
    width: int,
    factor: int = QWEN_FACTOR,
    min_pixels: int = QWEN_MIN_PIXELS,
    max_pixels: int = QWEN_MAX_PIXELS,
) -> tuple[int, int]:
    """The (height, width) a Qwen2-VL/2.5-VL processor resizes an image to.

    Both sides become multiples of ``factor``; the area is kept within
    ``[min_pixels, max_pixels]`` with the aspect ratio as close as possible.
    Checked against ``transformers``' own implementation in the tests.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"aspect ratio over 200 is not supported: {width}x{height}")
    h_bar = round(height / factor) * factor  # Python's round: half to even, as the processor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


@dataclass(frozen=True)
class BoxFrame:
    """The coordinate frame a model answers in, with the resize it was fed.

    ``scale(width, height)`` gives the frame's extent for an original image,
    so ``original = frame_value * original_size / frame_extent``.
    """

    kind: FrameKind = "abs_original"
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    factor: int = QWEN_FACTOR

    def __post_init__(self) -> None:
        if self.kind not in FRAME_KINDS:
            raise ValueError(f"unknown box frame {self.kind!r}; expected one of {FRAME_KINDS}")

    def extent(self, width: float, height: float, resized: tuple[int, int] | None = None) -> tuple[float, float]:
        """(frame_width, frame_height) of an original ``width x height`` image.

        ``resized`` = (resized_width, resized_height) overrides the computed
        smart resize for ``abs_resized`` (when the caller knows what the
        processor actually produced).
        """
        if self.kind == "abs_original":
            return float(width), float(height)
        if self.kind == "norm1000":
            return NORM_GRID, NORM_GRID
        if resized is not None:
            return float(resized[0]), float(resized[1])
        rh, rw = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return float(rw), float(rh)

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the processor feeds the vision tower (VLM-R1 reads it as image_grid_thw x 14)."""
        rh, rw = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return rw, rh

    def to_original(self, boxes, width: float, height: float, resized: tuple[int, int] | None = None) -> np.ndarray:
        fw, fh = self.extent(width, height, resized)
        scale = np.array([width / fw, height / fh, width / fw, height / fh])
        return as_boxes(boxes) * scale

    def from_original(self, boxes, width: float, height: float, resized: tuple[int, int] | None = None) -> np.ndarray:
        fw, fh = self.extent(width, height, resized)
        scale = np.array([fw / width, fh / height, fw / width, fh / height])
        return as_boxes(boxes) * scale

    def to_dict(self) -> dict:
        return {"kind": self.kind, "min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "factor": self.factor}
