"""Load a VLM's processor, with or without torchvision.

transformers' Qwen-VL processors also build a video processor, which needs
torchvision; CPU machines here cannot have it (PLATFORM.md). The image path
does not need video, so when the stock processor cannot be built we build
the same class without its video processor: identical tokenisation and
image preprocessing, no video support.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from vlmr1.families import Family


@lru_cache(maxsize=None)
def video_free(processor_class_name: str):
    """A subclass of the family's processor whose __init__ has no video_processor (transformers reads attributes from
    it)."""
    import transformers

    base = getattr(transformers, processor_class_name)

    class VideoFreeProcessor(base):  # type: ignore[misc, valid-type]
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                chat_template=chat_template,
                **kwargs,
            )

    VideoFreeProcessor.__name__ = f"VideoFree{processor_class_name}"
    return VideoFreeProcessor


def load_processor(path: str | Path, family: Family):
    """The processor saved at ``path``, resizing with the family's min/max pixels."""
    from transformers import AutoProcessor, AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    try:
        proc = AutoProcessor.from_pretrained(str(path))
    except Exception:  # no torchvision (video processor), or a saved subclass transformers does not know
        proc = None
    if not hasattr(proc, "image_processor"):  # transformers fell back to the bare tokenizer
        tok = AutoTokenizer.from_pretrained(str(path))
        images = Qwen2VLImageProcessorPil.from_pretrained(str(path))
        proc = video_free(family.processor)(image_processor=images, tokenizer=tok, chat_template=tok.chat_template)
    ip = proc.image_processor
    ip.size = {
        **(ip.size if isinstance(getattr(ip, "size", None), dict) else {}),
        "shortest_edge": family.min_pixels,
        "longest_edge": family.max_pixels,
    }
    for legacy in (
        "min_pixels",
        "max_pixels",
    ):  # transformers 5 reads size; stale attributes would override it with a warning
        if hasattr(ip, legacy):
            setattr(ip, legacy, None)
    proc.tokenizer.padding_side = "left"
    return proc
