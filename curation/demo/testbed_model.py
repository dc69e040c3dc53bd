"""The testbed's policy: a tiny Qwen2.5-VL (hidden 128, 3 layers) warm-started offline on fresh shape scenes.

The warm start is supervised (image + question -> a well-formed answer naming the right shape) and stopped while
the model is still partly right (about half of the evaluation refs at Acc@0.5 after 1000 steps of 32), so that
GRPO on the testbed's data has room to move it either way: up on clean labels, down on wrong boxes. It never
sees the testbed's own images (its scenes come from another seed stream). Built once per folder, about 3 minutes
on 2 cores.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from curation.demo.shapes import answer, draw, random_scene
from curation.demo.tiny_model import build_tiny_vlm

DIMS = {
    "text": dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=32,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]},
    ),
    "vision": dict(out_hidden_size=128),
}


def build_testbed_model(out: Path, steps: int = 1000, batch: int = 32, lr: float = 1e-3, seed: int = 0) -> Path:
    """The warm-started testbed model in ``out`` (reused when it was built with the same settings)."""
    out = Path(out)
    settings = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "dims": DIMS, "version": 1}
    stamp = out / "warm_start.json"
    if stamp.exists() and json.loads(stamp.read_text()) == settings:
        return out
    rng = random.Random(seed + 1_000_003)  # another stream than the testbed's scenes
    corpus = [answer(rng.choice(random_scene(rng))) for _ in range(400)]

    def warm(model, processor) -> None:
        supervise(model, processor, steps, batch, lr, seed)

    build_tiny_vlm(out, "qwen2_5_vl", seed=seed, dims=DIMS, corpus=corpus, warm=warm)
    stamp.write_text(json.dumps(settings))
    return out


def _examples(rng: random.Random, n: int):
    """(image, expression, answer) for ``n`` fresh scenes, one named shape each."""
    out = []
    for _ in range(n):
        scene = random_scene(rng)
        target = rng.choice(scene)
        out.append((draw(scene, rng.randrange(1 << 30)), target.expression, answer(target)))
    return out


def supervise(model, processor, steps: int, batch: int, lr: float, seed: int) -> None:
    """Cross-entropy on the answer tokens only, with a progress line every 100 steps (rate and ETA)."""
    import torch

    from vlmr1.prompts import build_messages

    rng, tok = random.Random(seed + 2_000_003), processor.tokenizer
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    side, tok.padding_side = tok.padding_side, "right"
    model.train()
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        examples = _examples(rng, batch)
        texts = [
            processor.apply_chat_template(build_messages("rec", e), add_generation_prompt=True, tokenize=False)
            + a
            + "<|im_end|>"
            for _, e, a in examples
        ]
        enc = processor(text=texts, images=[img for img, _, _ in examples], return_tensors="pt", padding=True)
        labels = enc["input_ids"].clone()
        for i, (_, _, a) in enumerate(examples):
            n_answer = len(tok(a + "<|im_end|>", add_special_tokens=False)["input_ids"])
            length = int(enc["attention_mask"][i].sum())
            labels[i, : length - n_answer] = -100
            labels[i, length:] = -100
        model(**enc, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 100 == 0 or step == steps:
            rate = step / (time.perf_counter() - t0)
            print(f"testbed warm start: step {step}/{steps}, {rate:.1f} steps/s, ETA {(steps - step) / rate:.0f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    tok.padding_side = side
    model.eval()
