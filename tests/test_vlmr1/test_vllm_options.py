"""What we tell vLLM, and what the scorer key records of it, without starting vLLM (the real runs: test_vllm.py)."""

import json
from pathlib import Path

import pytest

from curation.demo.tiny_model import build_tiny_vlm
from curation.difficulty.config import ScorerConfig
from curation.difficulty.scoring import ScorerSpec
from helpers import run_vlmr1
from vlmr1.families import get_family
from vlmr1.rollout.base import Sampling
from vlmr1.rollout.vllm_options import (
    VLLMError,
    VLLMOptions,
    describe,
    llm_kwargs,
    model_max_len,
    server_args,
    vllm_python,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return str(build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "m", "qwen2_5_vl"))


def test_max_model_len_comes_from_the_model(tmp_path, tiny):
    assert model_max_len(tiny) == 4096  # the tiny model's positions; the old default 8192 failed validation
    assert json.loads((Path(tiny) / "video_preprocessor_config.json").read_text()) == {
        "video_processor_type": "Qwen2VLVideoProcessor"
    }  # vLLM loads it even with video off
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 128000}}))
    assert model_max_len(str(tmp_path / "big")) == 8192 and model_max_len(str(tmp_path / "big"), cap=10**6) == 128000


def test_server_flags_and_offline_kwargs_say_the_same_thing(tiny):
    family = get_family("qwen2_5_vl").with_pixels(min_pixels=3136, max_pixels=200704)
    args = server_args(tiny, family, VLLMOptions(), port=8001)
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    kw = llm_kwargs(tiny, family, VLLMOptions())
    assert flag["--max-model-len"] == str(kw["max_model_len"]) == "4096"
    assert flag["--dtype"] == kw["dtype"] == "float32"
    assert (
        json.loads(flag["--mm-processor-kwargs"])
        == kw["mm_processor_kwargs"]
        == {
            "min_pixels": 3136,
            "max_pixels": 200704,
        }
    )
    assert json.loads(flag["--limit-mm-per-prompt"]) == kw["limit_mm_per_prompt"] == {"image": 1, "video": 0}
    assert "--enforce-eager" in args and kw["enforce_eager"]
    # no GPU here: whole prompts only (vLLM 0.32's CPU worker dies on a split seeded prompt)
    assert "--no-enable-chunked-prefill" in args and kw["enable_chunked_prefill"] is False
    on = server_args(tiny, family, VLLMOptions(chunked_prefill=True, extra_args=["--x", "1"]), port=1)
    assert "--no-enable-chunked-prefill" not in on and on[-2:] == ["--x", "1"]


def test_scorer_keys_offline_and_server_share_hf_and_other_flags_do_not(tiny):
    family = get_family("qwen2_5_vl")

    def key(model: dict) -> str:
        return ScorerSpec(model, family.key(), ScorerConfig(sampling=Sampling(n=4))).key

    offline, server = (
        describe("vllm", tiny, family, VLLMOptions()),
        describe("vllm-server", tiny, family, VLLMOptions()),
    )
    assert key(offline) == key(server)
    assert key(server) != key(describe("vllm-server", tiny, family, VLLMOptions(max_model_len=2048)))
    assert key(server) != key(describe("vllm-server", tiny, family, VLLMOptions(dtype="bfloat16")))
    assert key(server) != key(describe("vllm", tiny, family.with_pixels(max_pixels=100352), VLLMOptions()))
    hf = {k: v for k, v in server.items() if k != "vllm"} | {"engine": "hf"}
    assert key(hf) != key(server)


def test_vllm_python_says_what_to_set(monkeypatch):
    monkeypatch.setenv("VLMR1_VLLM_PYTHON", "/nowhere/bin/python")
    with pytest.raises(VLLMError, match="VLMR1_VLLM_PYTHON: /nowhere/bin/python is not an interpreter"):
        vllm_python(VLLMOptions())
    with pytest.raises(VLLMError, match="engine option python"):
        vllm_python(VLLMOptions(python="/nowhere/python3"))


def test_a_server_that_cannot_start_is_one_error_with_its_log(tmp_path, tiny, monkeypatch):
    """`vlmr1 score --engine vllm-server` with a 'vLLM' that exits at once: an error naming the server and its
    log's last lines, exit 1, no traceback."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'vllm: no such model' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("VLMR1_VLLM_PYTHON", str(fake))
    from helpers import coco_and_refcoco_catalog

    db = coco_and_refcoco_catalog(tmp_path, 2, 2, recipes=("none",))
    result = run_vlmr1("score", "none", "--catalog", db, "--engine", "vllm-server", "--model", tiny)
    assert result.returncode == 1, result.stderr
    assert "error: vLLM server for" in result.stderr and "exited with status 3" in result.stderr
    assert "vllm: no such model" in result.stderr and "Traceback" not in result.stderr


def test_qwen2_vl_flags_carry_its_own_resize_bounds(tiny):
    """Qwen2-VL's server and offline flags (its vLLM token equality is not in the suite: one family runs vLLM)."""
    family = get_family("qwen2_vl")
    args = server_args(tiny, family, VLLMOptions(), port=1)
    flag = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    expected = {"min_pixels": family.min_pixels, "max_pixels": family.max_pixels}
    assert json.loads(flag["--mm-processor-kwargs"]) == llm_kwargs(tiny, family, VLLMOptions())["mm_processor_kwargs"]
    assert json.loads(flag["--mm-processor-kwargs"]) == expected
