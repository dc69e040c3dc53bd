"""Tiny random-weight VLMs of real architectures, built offline (tests, demo, CPU benchmarks).

A byte-level BPE tokenizer is trained on a few hundred lines of the task's
own text, the Qwen special tokens are added, and a chat template of our own
emits the vision tokens for image parts. The model is the real transformers
class with a small config (hidden 64, 2 layers, vision depth 1), so
generation, processors and TRL exercise the same code paths as a real
checkpoint. Nothing is downloaded.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SPECIAL = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _corpus() -> list[str]:
    from vlmr1.prompts import get_template

    t = get_template("vlmr1")
    lines = [t.question("rec", "the man on the left"), t.question("ovd", "'dog', 'person'")]
    lines += [
        f"<think> the {w} is at the left </think><answer>[{i}, {i * 2}, {i + 100}, {i * 2 + 80}]</answer>"
        for i, w in enumerate(["man", "dog", "car", "cup", "cat", "chair"] * 10)
    ]
    lines += [
        '<answer>```json\n[{"bbox_2d": [10, 20, 110, 140], "label": "dog"}]\n```</answer>',
        "<answer>None</answer>",
    ] * 20
    return lines * 3


def _answer_examples(rng, n: int) -> list[tuple[str, str]]:
    """(task, problem, answer) triples in VLM-R1's answer formats with random boxes: right format, random content."""
    out = []
    for _ in range(n):
        x, y = rng.randrange(0, 200), rng.randrange(0, 150)
        box = [x, y, x + rng.randrange(20, 120), y + rng.randrange(20, 90)]
        if rng.random() < 0.6:
            out.append(
                (
                    "rec",
                    rng.choice(["the man on the left", "the dog", "red car", "the small cat"]),
                    f"<think> it is there </think><answer>{box}</answer>",
                )
            )
        elif rng.random() < 0.7:
            label = rng.choice(["dog", "person", "car", "cat"])
            out.append(
                (
                    "ovd",
                    f"'{label}', 'chair'",
                    f'<think> I see it </think><answer>```json\n[{{"bbox_2d": {box}, "label": '
                    f'"{label}"}}]\n```</answer>',
                )
            )
        else:
            out.append(("ovd", "'giraffe', 'boat'", "<think> nothing </think><answer>None</answer>"))
    return out


def warm_start(model, processor, steps: int, seed: int = 0, batch: int = 16) -> None:
    """A few hundred text-only steps on well-formed answers with random boxes.

    Random weights emit byte soup: every reward is 0, GRPO advantages are 0
    and nothing trains. After this the model answers in the right format with
    random boxes, so rewards vary within a group like a weak real model's.
    """
    import random

    import torch

    from vlmr1.prompts import build_messages

    rng = random.Random(seed)
    tok = processor.tokenizer
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        examples = _answer_examples(rng, batch)
        prompts = [
            processor.apply_chat_template(build_messages(t, p), add_generation_prompt=True, tokenize=False)
            for t, p, _ in examples
        ]
        p_ids = tok(prompts, add_special_tokens=False)["input_ids"]
        a_ids = tok([a + "<|im_end|>" for _, _, a in examples], add_special_tokens=False)["input_ids"]
        length = max(len(p) + len(a) for p, a in zip(p_ids, a_ids))
        ids = torch.full((batch, length), tok.pad_token_id)
        labels = torch.full((batch, length), -100)
        mask = torch.zeros((batch, length), dtype=torch.long)
        for i, (p, a) in enumerate(zip(p_ids, a_ids)):
            ids[i, : len(p) + len(a)] = torch.tensor(p + a)
            labels[i, len(p) : len(p) + len(a)] = torch.tensor(a)
            mask[i, : len(p) + len(a)] = 1
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


# Qwen2.5-VL-3B-Instruct's published dimensions (config.json): for GPU throughput with random weights, no download.
QWEN2_5_VL_3B = {
    "text": dict(
        vocab_size=151936,
        hidden_size=2048,
        intermediate_size=11008,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=2,
        head_dim=128,
        max_position_embeddings=128000,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    ),
    "vision": dict(
        depth=32,
        hidden_size=1280,
        intermediate_size=3420,
        num_heads=16,
        out_hidden_size=2048,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        fullatt_block_indexes=[7, 15, 23, 31],
        window_size=112,
    ),
}


def build_tiny_vlm(
    out: str | Path,
    family: str = "qwen2_5_vl",
    seed: int = 0,
    warm_start_steps: int = 0,
    dims: dict | None = None,
    dtype: str = "float32",
    corpus: list[str] | None = None,
    warm=None,
) -> Path:
    """Save a tiny model + tokenizer + processor of ``family`` to ``out``; return ``out``.

    ``warm_start_steps`` > 0 teaches it the answer formats first (``warm_start``), offline, in seconds.
    ``dims`` (``{"text": ..., "vision": ...}``, e.g. ``QWEN2_5_VL_3B``) replaces the tiny sizes: a
    random-weight model of real size, with the same small tokenizer, for throughput benchmarks.
    ``corpus``: more lines for the tokenizer to learn; ``warm(model, processor)``: a warm start of the caller's own.
    With ``$VLMR1_TINY_MODEL_CACHE`` set (the test suite sets it), a model of the same family, seed, warm start and
    dtype is built once into that folder and copied (building is deterministic; a warm start takes seconds).
    """
    cache = os.environ.get(CACHE_ENV)
    if cache and dims is None and corpus is None and warm is None:
        return _copy_of_cached(Path(cache), Path(out), family, seed, warm_start_steps, dtype)
    return _build(Path(out), family, seed, warm_start_steps, dims, dtype, corpus, warm)


def _build(out: Path, family, seed, warm_start_steps, dims, dtype, corpus, warm) -> Path:
    import torch

    from vlmr1.families import get_family

    fam = get_family(family)
    tok, proc = _tokenizer_and_processor(fam, corpus or [])
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    Config, Model, vision = _vision_tower(family)
    text = dict(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=4096,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
    )
    tokens = dict(bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    common = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        **tokens,
    )
    text = {**text, **tokens, **(dims or {}).get("text", {})}
    vision = {**vision, **(dims or {}).get("vision", {})}
    torch.manual_seed(seed)
    model = Model(Config(text_config=text, vision_config=vision, **common)).to(getattr(torch, dtype)).eval()
    if warm_start_steps:
        warm_start(model, proc, warm_start_steps, seed)
    if warm is not None:
        warm(model, proc)
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    out = Path(out)
    model.save_pretrained(out)
    proc.save_pretrained(out)
    # vLLM's Qwen-VL processing wants a video processor config even with video off
    (out / "video_preprocessor_config.json").write_text('{"video_processor_type": "Qwen2VLVideoProcessor"}\n')
    return out


CACHE_ENV = "VLMR1_TINY_MODEL_CACHE"


def _copy_of_cached(cache: Path, out: Path, family: str, seed: int, warm_start_steps: int, dtype: str) -> Path:
    """Build into the cache once (a temporary folder renamed into place), then copy to ``out``."""
    cached = cache / f"{family}-seed{seed}-warm{warm_start_steps}-{dtype}"
    if not (cached / "config.json").exists():
        building = cache / f".{cached.name}.{os.getpid()}"
        _build(building, family, seed, warm_start_steps, None, dtype, None, None)
        try:
            building.rename(cached)
        except OSError:  # another process put it there first
            shutil.rmtree(building, ignore_errors=True)
    shutil.copytree(cached, out, dirs_exist_ok=True)
    return out


def _tokenizer_and_processor(fam, corpus: list[str]):
    """A 512-token byte-level BPE trained on the answer formats, and the family's processor around it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from vlmr1.processors import video_free

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    bpe.train_from_iterator(
        _corpus() + corpus, trainers.BpeTrainer(vocab_size=512, special_tokens=SPECIAL, initial_alphabet=alphabet)
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHAT_TEMPLATE
    )
    images = Qwen2VLImageProcessorPil(min_pixels=fam.min_pixels, max_pixels=fam.max_pixels)
    return tok, video_free(fam.processor)(image_processor=images, tokenizer=tok, chat_template=CHAT_TEMPLATE)


def _vision_tower(family: str):
    """(config class, model class, tiny vision config) of a family."""
    if family == "qwen2_5_vl":
        from transformers import Qwen2_5_VLConfig as Config
        from transformers import Qwen2_5_VLForConditionalGeneration as Model

        vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64)
        vision.update(fullatt_block_indexes=[0], window_size=112)
    elif family == "qwen2_vl":
        from transformers import Qwen2VLConfig as Config
        from transformers import Qwen2VLForConditionalGeneration as Model

        vision = dict(depth=1, embed_dim=32, hidden_size=64, mlp_ratio=2, num_heads=2)
    else:
        raise ValueError(f"no tiny builder for family {family!r}")
    vision.update(patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    return Config, Model, vision
