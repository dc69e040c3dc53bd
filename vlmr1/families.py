"""Model family adapters: chat format, image resize and box frame of a VLM family (ARCHITECTURE.md).

Scoring, training and evaluation take the same ``Family`` so a difficulty
label measured under one resize/frame is never used under another: the
family's ``key()`` is part of every scorer and run key.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlmr1.boxes import QWEN_FACTOR, QWEN_MAX_PIXELS, QWEN_MIN_PIXELS, BoxFrame, smart_resize


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]  # transformers config.model_type values of this family
    frame_kind: str  # abs_resized | norm1000 | abs_original
    processor: str  # transformers processor class (its video processor is not needed)
    min_pixels: int = QWEN_MIN_PIXELS
    max_pixels: int = QWEN_MAX_PIXELS
    image_pad: str = "<|image_pad|>"  # the token a prompt's image expands to; no engine may generate it
    factor: int = QWEN_FACTOR  # patch size x spatial merge size

    def frame(self) -> BoxFrame:
        return BoxFrame(self.frame_kind, min_pixels=self.min_pixels, max_pixels=self.max_pixels, factor=self.factor)

    def resized(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) the processor feeds the vision tower for an original image."""
        h, w = smart_resize(int(height), int(width), self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def with_pixels(self, min_pixels: int | None = None, max_pixels: int | None = None) -> "Family":
        from dataclasses import replace

        return replace(self, min_pixels=min_pixels or self.min_pixels, max_pixels=max_pixels or self.max_pixels)

    def key(self) -> dict:
        return {
            "family": self.name,
            "frame": self.frame_kind,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "factor": self.factor,
        }


FAMILIES = {
    # Qwen2-VL answers on a 0..1000 grid; Qwen2.5-VL in pixels of its resized input; Qwen3-VL on 0..1000 again.
    "qwen2_vl": Family("qwen2_vl", ("qwen2_vl",), "norm1000", "Qwen2VLProcessor"),
    "qwen2_5_vl": Family("qwen2_5_vl", ("qwen2_5_vl",), "abs_resized", "Qwen2_5_VLProcessor"),
    "qwen3_vl": Family("qwen3_vl", ("qwen3_vl",), "norm1000", "Qwen3VLProcessor", factor=32),
}


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}") from None


# What a loadable VLM folder holds besides config.json (save_pretrained of the model and of its processor): any one
# file of each kind. A half-finished download has config.json and lacks one of them.
MODEL_PARTS = {
    "weights": (
        "model.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
        "pytorch_model.bin.index.json",
    ),
    "tokenizer": ("tokenizer.json", "tokenizer_config.json"),
    "processor config": ("preprocessor_config.json", "processor_config.json"),
}


def check_model_folder(path: str) -> None:
    """Refuse a folder that is not a whole saved model before anything loads it or registers a scorer for it
    (transformers' own error for a half-finished download points at the Hub)."""
    import json
    from pathlib import Path

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ValueError(f"{path}: no such model folder (a folder with config.json, as save_pretrained writes)")
    missing = [f"{what} ({' or '.join(names[:2])})" for what, names in MODEL_PARTS.items()
               if not any((folder / n).is_file() for n in names)]  # fmt: skip
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            shards = sorted(set(json.loads((folder / index).read_text()).get("weight_map", {}).values()))
            missing += [f"weight shard {s}" for s in shards if not (folder / s).is_file()]
    if missing:
        raise ValueError(
            f"{path}: an incomplete model folder (a half-finished download or copy?): config.json is there but "
            f"not {', '.join(missing)}; copy it again, or point at a folder save_pretrained wrote"
        )


def family_of_model(path: str) -> Family:
    """The family a saved model belongs to, from its config.json ``model_type``; the folder must be whole."""
    import json
    from pathlib import Path

    check_model_folder(path)
    config = Path(path) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type")
    for fam in FAMILIES.values():
        if model_type in fam.model_types:
            return fam
    raise ValueError(f"{path}: model_type {model_type!r} is not a known VLM family ({', '.join(FAMILIES)})")
