#!/usr/bin/env bash
# GPU readiness check (issue #18 item 4): a prepared script for a machine with one CUDA GPU, no network and
# only this repository (no SmolLM2 weights travel). In under 8 minutes it runs
#   1. the core and rollout tests with torch's default device set to CUDA,
#   2. a 30-step run of the tiny default on CUDA,
#   3. step_bound.py for a randomly initialised ~0.5B Llama-shaped model (fp32 and bf16 variants),
#   4. one real EAPO step through the TRL adapter, and its GRPO loss against TRL's own in bf16,
# and writes every result, with one summary (gpu_check.json), to OUT_DIR. A failing part is recorded and
# the next one still runs; the exit code is 1 if any part failed. CI never runs it.
#
#   bash benchmarks/gpu_check.sh OUT_DIR            # on the GPU machine
#   bash benchmarks/gpu_check.sh OUT_DIR --dry-run  # on CPU: the same parts, reduced, to check the script
set -uo pipefail

if [[ $# -lt 1 || "$1" == -* ]]; then
    echo "usage: bash benchmarks/gpu_check.sh OUT_DIR [--dry-run]" >&2
    exit 2
fi
OUT=$(mkdir -p "$1" && cd "$1" && pwd)
DRY=0
[[ "${2:-}" == "--dry-run" ]] && DRY=1
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
PY=${PYTHON:-python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

if [[ $DRY == 1 ]]; then
    DEVICE=cpu
    TESTS=(tests/core/test_entropy.py tests/rollout/test_rollout_logprobs.py)
    STEPS=2
    MODEL_FLAG=--small
    BOUND=(--smoke --variants fp32_decode_logprobs)
    T_TESTS=300; T_RUN=300; T_BOUND=400; T_TRL=200
else
    DEVICE=cuda
    TESTS=(tests/core tests/rollout)
    STEPS=30
    MODEL_FLAG=
    BOUND=(--quick --variants fp32_decode_logprobs,bf16_all)
    T_TESTS=150; T_RUN=90; T_BOUND=170; T_TRL=60
fi

STATUS="$OUT/status.tsv"
: > "$STATUS"
part() {  # part NAME TIMEOUT_S COMMAND...: run it, log to OUT/NAME.log, record exit code and seconds
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    echo "=== $name: $*" >&2
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - start))" >> "$STATUS"
    echo "    $name: exit $rc after $((SECONDS - start)) s (log $OUT/$name.log)" >&2
}

"$PY" - > "$OUT/environment.json" <<PYEOF
import json, torch
info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "dry_run": bool($DRY)}
if torch.cuda.is_available():
    info.update(gpu=torch.cuda.get_device_name(0), bf16=torch.cuda.is_bf16_supported(),
                memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1))
print(json.dumps(info))
PYEOF
if [[ $DRY == 0 ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "torch sees no CUDA device; run with --dry-run on a CPU machine" >&2
    exit 2
fi

part tests "$T_TESTS" env EAPO_DEFAULT_DEVICE=$DEVICE PYTHONPATH="$REPO/benchmarks${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pytest -q -p no:cacheprovider -p gpu_default_device "${TESTS[@]}" --junitxml="$OUT/tests.xml"
part tiny_run "$T_RUN" "$PY" -m eapo.cli train --no-progress --model.device $DEVICE --train.steps $STEPS \
    --eval.every 0 --run.output_dir "$OUT/runs" --run.name tiny_${DEVICE}
part random_llama 120 "$PY" benchmarks/gpu_random_llama.py "$OUT/random_llama" $MODEL_FLAG
part step_bound "$T_BOUND" "$PY" benchmarks/step_bound.py "${BOUND[@]}" --device $DEVICE \
    --model-path "$OUT/random_llama" --out-dir "$OUT"
part trl_check "$T_TRL" "$PY" benchmarks/gpu_trl_check.py --device $DEVICE --out "$OUT/trl_check.json"
rm -rf "$OUT/random_llama"  # weights are re-made on demand; only the figures come back

"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path

out = Path(sys.argv[1])
parts = {}
for line in (out / "status.tsv").read_text().splitlines():
    name, rc, seconds = line.split("\t")
    parts[name] = {"exit_code": int(rc), "seconds": int(seconds), "ok": rc == "0"}
summary = {"environment": json.loads((out / "environment.json").read_text()), "parts": parts}
for name in ("step_bound_quick.json", "step_bound_smoke.json"):
    if (out / name).is_file():
        record = json.loads((out / name).read_text())
        summary["step_bound"] = {k: record["summary"][k] for k in ("step_over_bound", "phase_over_bound")}
        summary["step_bound"]["targets"] = record["targets"]
if (out / "trl_check.json").is_file():
    summary["trl_check"] = json.loads((out / "trl_check.json").read_text())
metrics = out / "runs"
rows = [json.loads(l) for p in metrics.glob("*/metrics.jsonl") for l in p.read_text().splitlines()]
train = [r for r in rows if "loss" in r]
if train:
    summary["tiny_run"] = {"steps": len(train), "last_reward": train[-1]["reward/mean"],
                           "mean_step_s": sum(r["time/step"] for r in train) / len(train)}
summary["ok"] = all(p["ok"] for p in parts.values())
(out / "gpu_check.json").write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps({"ok": summary["ok"], "parts": parts}))
sys.exit(0 if summary["ok"] else 1)
PYEOF
