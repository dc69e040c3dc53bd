"""What vLLM needs from us before it can run (issue 16's groundwork; vLLM itself is not installed here yet)."""

import json

from vlmr1.rollout.vllm_engine import model_max_len
from vlmr1.testing.tiny import build_tiny_vlm


def test_max_model_len_comes_from_the_model(tmp_path):
    model = build_tiny_vlm(tmp_path / "tiny", "qwen2_5_vl")
    assert model_max_len(str(model)) == 4096  # the tiny model's positions; the old default 8192 failed validation
    assert json.loads((model / "video_preprocessor_config.json").read_text()) == {
        "video_processor_type": "Qwen2VLVideoProcessor"
    }
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "config.json").write_text(json.dumps({"text_config": {"max_position_embeddings": 128000}}))
    assert model_max_len(str(tmp_path / "big")) == 8192 and model_max_len(str(tmp_path / "big"), cap=10**6) == 128000
