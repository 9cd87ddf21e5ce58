#!/usr/bin/env bash
# EAPO (PAPER.md §5) on Qwen2.5-Math-7B with verl 0.9.1: FSDP actor, vLLM rollouts, GSM8K + MATH.
# Settings follow PAPER.md §6 (lr 1e-6, no KL, G = 8, temperature 1.0, top-p 0.95, responses up to
# 3,072 tokens, clip 0.2 / 0.28, token-mean, batch 512) on one node of 8 GPUs; change NNODES/GPUS.
#
# Prerequisites (a CUDA machine, in verl's own environment: verl pins transformers < 5.11):
#   pip install "eapo[verl]" vllm          # or: pip install -e /path/to/eapo && pip install "verl[verl-core,vllm]==0.9.1"
#   python examples/data_preprocess/gsm8k.py --local_save_dir ~/data/gsm8k        # from verl's repository
#   python examples/data_preprocess/math_dataset.py --local_save_dir ~/data/math
#
# What differs from verl's plain GRPO recipe: the exported VERL_USE_EXTERNAL_MODULES (verl imports
# eapo.integrations.verl on `import verl`, in every process that inherits it, which registers the eapo
# trainer and losses) and the overrides in eapo_overrides.txt beside this file (the eapo trainer, the
# shaper, α and φ, the eapo run folder's dump interval, TransferQueue's storage units). Edit that file to
# change them; ALGO=forking etc. picks another shaper. Everything else below is an ordinary verl recipe.
#
# EAPO_CHECK_ONLY=1 composes the same overrides with Hydra and builds the actor config on CPU instead
# of launching (examples/verl/check_config.py), a quick way to validate edits to this file.
set -euo pipefail

MODEL=${MODEL:-Qwen/Qwen2.5-Math-7B}
DATA=${DATA:-$HOME/data}
NNODES=${NNODES:-1}
GPUS=${GPUS:-8}
ALGO=${ALGO:-eapo}            # eapo | forking | entro_adv | w_reinf | gtpo | quadrant

export VERL_USE_EXTERNAL_MODULES=eapo.integrations.verl
# eapo's overrides, one per line, comments and blank lines skipped; the shaper is $ALGO.
mapfile -t EAPO_OVERRIDES < <(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$(dirname "$0")/eapo_overrides.txt" \
    | sed "s/^actor_rollout_ref.actor.policy_loss.loss_mode=.*/actor_rollout_ref.actor.policy_loss.loss_mode=$ALGO/")

ARGS=(
    algorithm.adv_estimator=grpo
    algorithm.use_kl_in_reward=False
    data.train_files="['$DATA/gsm8k/train.parquet','$DATA/math/train.parquet']"
    data.val_files="['$DATA/gsm8k/test.parquet','$DATA/math/test.parquet']"
    data.train_batch_size=512
    data.max_prompt_length=1024
    data.max_response_length=3072
    data.filter_overlong_prompts=True
    data.truncation=error
    actor_rollout_ref.model.path="$MODEL"
    actor_rollout_ref.model.use_remove_padding=True
    actor_rollout_ref.model.enable_gradient_checkpointing=True
    actor_rollout_ref.actor.strategy=fsdp
    actor_rollout_ref.actor.optim.lr=1e-6
    actor_rollout_ref.actor.ppo_mini_batch_size=128
    actor_rollout_ref.actor.use_dynamic_bsz=True
    actor_rollout_ref.actor.ppo_max_token_len_per_gpu=24576
    actor_rollout_ref.actor.use_kl_loss=False
    actor_rollout_ref.actor.entropy_coeff=0
    actor_rollout_ref.actor.clip_ratio_low=0.2
    actor_rollout_ref.actor.clip_ratio_high=0.28
    actor_rollout_ref.actor.loss_agg_mode=token-mean
    # --- rollouts: vLLM, G = 8 ---
    actor_rollout_ref.rollout.name=vllm
    actor_rollout_ref.rollout.n=8
    actor_rollout_ref.rollout.temperature=1.0
    actor_rollout_ref.rollout.top_p=0.95
    actor_rollout_ref.rollout.tensor_model_parallel_size=2
    actor_rollout_ref.rollout.gpu_memory_utilization=0.6
    actor_rollout_ref.rollout.log_prob_use_dynamic_bsz=True
    trainer.n_gpus_per_node="$GPUS"
    trainer.nnodes="$NNODES"
    trainer.total_training_steps=220
    trainer.save_freq=20
    trainer.test_freq=10
    trainer.project_name=eapo
    trainer.experiment_name="qwen2.5-math-7b-$ALGO"
    trainer.logger="['console','tensorboard']"
    "${EAPO_OVERRIDES[@]}"
)

if [ "${EAPO_CHECK_ONLY:-0}" = "1" ]; then
    exec python "$(dirname "$0")/check_config.py" "${ARGS[@]}"
fi
exec python -m verl.trainer.main_ppo "${ARGS[@]}" "$@"
