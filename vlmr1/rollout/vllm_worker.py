"""The offline vLLM engine's worker: ``vllm.LLM`` in the vLLM venv, spoken to over a pipe by ``VLLMEngine``.

Run by the vLLM venv's python as a script (it imports only the standard
library, PIL and vllm, never our package, whose dependencies that venv does
not have). Protocol, one JSON object per line:

- argv[1]: the ``vllm.LLM`` keyword arguments;
- it writes ``{"ready": true, "vllm": VERSION}`` once the model is loaded;
- each line it reads is ``{"prompts": [{"prompt": TEXT, "images": [PNG_B64, ...]}], "params": [{...}, ...]}``
  (one ``SamplingParams`` keyword dict per prompt), answered by
  ``{"outputs": [[{"text": ..., "token_ids": [...]}, ...], ...]}`` or ``{"error": MESSAGE}``;
- EOF on its input ends it.

vLLM logs to stdout, so the protocol keeps the real stdout to itself and
everything else printed goes to stderr (the engine's log file).
"""

import base64
import io
import json
import os
import sys


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # vLLM's (and its children's) prints go to the log, not into the protocol
    from PIL import Image
    from vllm import LLM, SamplingParams, __version__

    llm = LLM(**json.loads(sys.argv[1]))
    proto.write(json.dumps({"ready": True, "vllm": __version__}) + "\n")
    for line in sys.stdin:
        try:
            call = json.loads(line)
            prompts = []
            for p in call["prompts"]:
                images = [Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB") for b in p["images"]]
                prompts.append({"prompt": p["prompt"], "multi_modal_data": {"image": images}})
            params = [SamplingParams(**kw) for kw in call["params"]]
            results = llm.generate(prompts, params, use_tqdm=False)
            outputs = [[{"text": o.text, "token_ids": list(o.token_ids)} for o in r.outputs] for r in results]
            proto.write(json.dumps({"outputs": outputs}) + "\n")
        except Exception as exc:  # the client reports it and stops; we stay up for nothing
            proto.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
