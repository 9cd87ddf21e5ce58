#!/usr/bin/env bash
# Regenerates every experiment behind the README's Results section and docs/findings.md: the same commands,
# settings and seeds that produced the JSON in benchmarks/results/ (there they ran with /tmp folders), then
# copies each report here and re-renders the README block. Hours on 2 CPU cores; every grid is resumable
# (a finished arm x seed is never rerun), so an interrupted run continues where it stopped.
#
#   bash benchmarks/experiments.sh                 # everything
#   bash benchmarks/experiments.sh compare smollm2 # some of: compare sensitivity smollm2 ablate cosine
#
# OUT (default runs/experiments) holds the runs; OMP_NUM_THREADS=1 lets two grids share two cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/experiments}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(compare sensitivity smollm2 ablate cosine)

# The tiny default with every seed starting from one SFT warm-up; in-training eval every 20 steps on 100
# held-out problems; final eval 8 samples on 200 held-out problems (T = 0.6, top-p 0.95).
TINY=(--init shared --steps 60 --final-samples 8 --final-problems 200 --eval.every 20 --eval.num_problems 100
      --run.entropy_change_every 0 --run.tensorboard false)
# The 20-step grids (all algorithms, and the quadrant ablations) share one runs folder and evaluate every 10 steps.
TINY20=(--init shared --steps 20 --final-samples 8 --final-problems 200 --runs-dir "$OUT/runs20" --eval.every 10
        --eval.num_problems 100 --run.entropy_change_every 0 --run.tensorboard false)

for part in "${parts[@]}"; do
    case "$part" in
    compare)
        # All eleven algorithms, 60 steps, 5 seeds (the README's Results); GRPO vs EAPO alone is a report on
        # the same runs (it trains nothing).
        eapo compare --seeds 5 --target 0.36 --out "$OUT/compare_60steps" --runs-dir "$OUT/runs60" "${TINY[@]}"
        python benchmarks/collect.py --figures --only paired,entropy "$OUT/compare_60steps/compare.json" \
            compare_tiny_60steps.json
        eapo compare --algos grpo,eapo --seeds 5 --target 0.36 --out "$OUT/compare_grpo_eapo_60steps" \
            --runs-dir "$OUT/runs60" "${TINY[@]}"
        python benchmarks/collect.py --figures --only paired "$OUT/compare_grpo_eapo_60steps/compare.json" \
            compare_grpo_eapo_60steps_tiny.json
        python benchmarks/eapo_shaping.py "$OUT"/runs60/eapo/seed{0,1,2,3,4} --out benchmarks/results/eapo_shaping_tiny.json
        # All eleven algorithms, 20 steps, 3 seeds, in the runs folder of the 20-step ablations.
        eapo compare --seeds 3 --target 0.36 --out "$OUT/compare_20steps" "${TINY20[@]}"
        python benchmarks/collect.py --figures --only accuracy "$OUT/compare_20steps/compare.json" \
            compare_tiny.json
        ;;
    sensitivity)
        eapo compare --sweep alpha=0.1,0.2,0.3,0.4,0.5,1 --sweep phi=1,2,4 --seeds 3 --out "$OUT/sensitivity" \
            --runs-dir "$OUT/runs_sensitivity" "${TINY[@]}"
        python benchmarks/collect.py --figures --only paired "$OUT/sensitivity/sensitivity.json" \
            sensitivity_tiny.json
        ;;
    smollm2)
        # SmolLM2-135M-Instruct, full fine-tuning in fp32, 6 steps x 2 prompts x 8 responses per run.
        eapo compare --config configs/smollm2_chain_sum.yaml --algos grpo,forking,entro_adv,eapo --seeds 3 \
            --steps 6 --final-samples 4 --final-problems 48 --out "$OUT/compare_smollm2" \
            --runs-dir "$OUT/runs_smollm2" --train.prompts_per_step 2 --train.lr 1e-5 --eval.every 0 \
            --eval.num_problems 8 --eval.k 2 --run.entropy_change_every 0 --run.tensorboard false \
            --run.dump_rollouts_every 0 --run.checkpoint_every 0
        python benchmarks/collect.py "$OUT/compare_smollm2/compare.json" compare_smollm2_chain_sum.json
        eapo eval --model smollm2 --config configs/smollm2_chain_sum.yaml --k 1,2,4 --num-problems 48 \
            --output "$OUT/smollm2_base_eval.json"
        python benchmarks/collect.py "$OUT/smollm2_base_eval.json" smollm2_chain_sum_base_eval.json
        ;;
    ablate)
        eapo ablate --mode isolate --seeds 3 --pass-curve --pass-curve-samples 256 --pass-curve-problems 8 \
            --out "$OUT/ablate_isolate" "${TINY20[@]}"
        eapo ablate --mode eapo-without --seeds 3 --out "$OUT/ablate_eapo_without" "${TINY20[@]}"
        python benchmarks/collect.py --figures --only pass_at_k,entropy "$OUT/ablate_isolate/ablation.json" \
            ablation_isolate_tiny.json
        python benchmarks/collect.py --figures --only '' "$OUT/ablate_eapo_without/ablation.json" \
            ablation_eapo_without_tiny.json
        ;;
    cosine)
        # Issue #17's diagnostic: each algorithm's gradient and one-step update vs GRPO's on one batch.
        ALL="$(python -c "from eapo.train.algorithms import ALGORITHMS; print(','.join(ALGORITHMS))")"
        eapo gradients --cosine --prompts 16 --algos "$ALL,eapo:alpha=1:phi=1" \
            --output "$OUT/gradients_cosine_tiny.json" --no-progress
        python benchmarks/collect.py "$OUT/gradients_cosine_tiny.json" gradients_cosine_tiny.json
        eapo gradients --cosine --config configs/smollm2_chain_sum.yaml --prompts 6 \
            --algos grpo,eapo,eapo:alpha=1:phi=1,forking,w_reinf --split-algos grpo,eapo \
            --output "$OUT/gradients_cosine_smollm2.json" --no-progress
        python benchmarks/collect.py "$OUT/gradients_cosine_smollm2.json" gradients_cosine_smollm2.json
        python benchmarks/findings.py --results-only
        ;;
    *)
        echo "unknown part '$part' (expected compare, sensitivity, smollm2, ablate or cosine)" >&2
        exit 2
        ;;
    esac
done
python benchmarks/results_section.py
