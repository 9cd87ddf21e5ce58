#!/usr/bin/env bash
# Reruns the SmolLM2 study of issue #19 from scratch, part by part, with eapo's own commands, and copies each
# report into benchmarks/results/ (names starting compare_smollm2_, ablation_*_smollm2_, credit_smollm2_,
# gradients_smollm2_, quadrants_smollm2_), with its markdown and figures, then re-renders README Results and
# docs/findings.md from them (commit the lot). Days of CPU: every grid is resumable (a finished arm x seed is
# never rerun, an interrupted one continues from its newest checkpoint), so run a part, stop it, run it again.
#
#   bash benchmarks/smollm2_study.sh gate              # the entropy gate of configs/smollm2_study.yaml
#   bash benchmarks/smollm2_study.sh gate_complex      # the second task's (configs/smollm2_complex.yaml)
#   bash benchmarks/smollm2_study.sh pilot_1e-5        # GRPO, 2 seeds, lr 1e-5 (also pilot_3e-6, pilot_1e-6)
#   bash benchmarks/smollm2_study.sh screen_1e-6       # the pilot's seed 0 only to step 100 (below)
#   bash benchmarks/smollm2_study.sh pilot_mde         # the pilot's report: horizon, seed spread -> MDE
#   bash benchmarks/smollm2_study.sh headline          # also exploratory, controls, isolate, eapo_without
#   bash benchmarks/smollm2_study.sh analyses_start    # credit probe and gradient cosine on the base model
#   bash benchmarks/smollm2_study.sh analyses_end      # credit, gradients, quadrants on the headline's seed 100
#   bash benchmarks/smollm2_study.sh analyses          # both
#   bash benchmarks/smollm2_study.sh complex_headline  # the second task: EAPO vs GRPO, 4 seeds (below)
#   bash benchmarks/smollm2_study.sh queue             # every part after the pilot, in the issue's order
#   bash benchmarks/smollm2_study.sh stop              # stop the running queues, each run at a checkpoint
#   bash benchmarks/smollm2_study.sh archive           # copy finished runs, without weights, into the repo
#
# `queue` is the way to leave the study running for days: start it twice, as two background processes (see
# "Two processes" below). Each goes through QUEUE in order; a part whose remaining runs the other process
# holds is left to it (the grid exits 75, the queue moves on) and that process collects it. The analyses
# take a lock, so the two never run the same one. A third `queue` refuses to start. To start the two, from
# the repository with its environment active, detached from the terminal (each in its own process group):
#
#   mkdir -p /tmp/study && pgrep -af "smollm2_study.sh queue"   # nothing listed: none is running
#   setsid bash -c 'bash benchmarks/smollm2_study.sh queue >> /tmp/study/queue_a.log 2>&1' < /dev/null &> /dev/null &
#   sleep 20; setsid bash -c 'bash benchmarks/smollm2_study.sh queue >> /tmp/study/queue_b.log 2>&1' < /dev/null &> /dev/null &
#
# To stop them: `bash benchmarks/smollm2_study.sh stop`, then `python benchmarks/smollm2_study_state.py`
# (the state file and README Results) and commit those with benchmarks/study_runs. Each queue registers under
# $OUT/queues; `stop` sends
# one SIGTERM to each queue's scripts and eapo commands (every run finishes its step and saves a checkpoint,
# an analysis keeps its journaled pieces; nothing new starts) and waits until all have exited (STOP_TIMEOUT
# seconds, default 900: a run in the middle of an evaluation finishes it first). The next start resumes
# every run at its checkpoint. Stop them before the machine goes away: a process killed outright loses the
# steps since its last periodic checkpoint (up to 20, about 15 minutes of a SmolLM2 run).
#
# The machine itself may not come back: on 2026-12-01 a session got a new one without runs/ (four finished
# headline runs, seed 102's half-trained pair and every checkpoint were lost). So `stop` ends by archiving
# every finished run not archived yet into $ARCHIVE (benchmarks/study_runs.py: config, metrics, evaluations
# and the final checkpoint's state, without weights or optimizer state, about 1 MB a run; commit it),
# and every grid part first restores the archived runs its folder lacks, which it then finds finished and
# never retrains. Only the runs under way, and the final weights the end-of-run analyses probe, are lost with
# a machine. The rollout dumps of the runs later analyses read (ARCHIVE_DUMPS) come along too, and so does
# $OUT/analyses (finished outputs, and the journals of analyses under way: on the same kind of machine they
# resume from them; their fingerprints name the machine, so on another kind they start afresh).
#
# The pilot screens before it spends (a budget rule fixed on 2026-11-30, before any run reached step 100):
# every learning rate runs seed 0 to step 100 (`screen_<lr>`: the pilot's own run, stopped with a checkpoint
# once its step-100 evaluation is written); the one with the largest area under the held-out Avg@8 curve
# over steps 0-100, and any other within 0.02 of it, goes on (`pilot_<lr>`: 250 steps, a second seed); the
# others stop at 100 and are reported as screened out.
#
# Two processes may run side by side (one torch thread each, OMP_WAIT_POLICY=PASSIVE); never more on 2 cores.
# Anything else that computes beside them costs them time: a one-core matmul loop (at one thread or two)
# made both runs' steps about 1.4x slower while it ran (2026-12-01, AMD EPYC, 2 cores). And keep glibc's
# allocator: jemalloc preloaded with its memory return turned off (dirty/muzzy decay -1) grew one run to
# 18.8 GB in 28 minutes and the kernel killed it. Transparent huge pages did not help either (torch's
# THP_MEM_ALLOC_ENABLE=1, 2026-12-01, AVX2 machine, GRPO seed 100 with it beside EAPO seed 100 without, 31
# minutes, steps ~33-54): its guest page faults fell from ~4.4k/s to ~400/s and its logits and gradients
# stayed bit-identical (a SmolLM2 16x80 forward and backward hashed with and without), but it had four 4x
# slow steps (149-181 s against ~40 s) to the other run's one; back without it for 20 minutes, GRPO had
# three to EAPO's one, so the difference follows the run, not THP.
#
# What the slow steps are (measured 2026-12-01 on GRPO and EAPO seed 100, steps 6-92, fp32, AVX2): a response
# that runs to the length limit (sampling.max_new_tokens = 96, against ~25 tokens for the longest of a
# normal batch). Generation computes all 64 rows until the longest stops, and the update pads every row to the
# widest, so that step costs ~4x (median 166-169 s: rollout ~72 s against 14, forward+backward ~90 s against
# 25). All 22 steps with a truncated response (response/truncated_frac > 0) were slow, none of the 147
# without one passed 100 s; they took 30-44% of the two runs' step time. The two runs of a seed see the same
# prompts at the same step, which is why both slowed at steps 13, 28, 35, 45, 46 and 58. A cache-resident
# compute probe and a 64 MB copy probe, timed every 20 s beside them, stayed at their usual times through a
# slow step (no steal, no host-wide slowdown). Nothing here is changed mid-study: cutting the batch's padding
# would change the rounding of every later step. The state file counts them (slow_steps).
#
# The two processes may be two parts, or the same grid part started twice: the two split its runs (each run is claimed by
# one process), and the one that finishes last collects the report; the other exits 75 naming the runs still
# held, which stops its copy of this script before the collect. LR and STEPS are fixed by the pilot (issue #19
# item 2) before the headline starts: LR below is the screen's choice, STEPS (unless given) the horizon in the
# pilot's report. OUT (default runs/smollm2_study) holds the runs.
#
# Horizon (rule fixed on 2026-11-30 at 23:00 UTC, while seed 1 of the lr 3e-6 pilot stood at step 203, before its
# evaluations at 220, 240 and 250 existed): STEPS is the first evaluated step at which the mean of the pilot's
# two GRPO Avg@8 curves reaches 90% of its gain from step 0 to the end (the end read as the mean of the
# evaluations at 240 and 250, to damp one evaluation's noise). `python benchmarks/smollm2_study_state.py`
# applies it and records the result.
#
# Seeds (fixed on 2026-11-30, before the headline started): the headline and every later grid use seeds
# 100-107 (the 3-seed grids 100-102, so that they share the headline's GRPO and EAPO runs), disjoint from the
# pilot's seeds 0 and 1. The pilot chose the learning rate and the horizon from GRPO's curves under seeds 0
# and 1; rerunning those seeds in the comparison would hand GRPO the curves it was tuned on.
#
# Second task (rule fixed on 2026-12-01, before any run of it): configs/smollm2_complex.yaml
# (complex_arithmetic, gate passed: `gate_complex`). It comes last in the issue's budget order, so it gets no
# pilot of its own: it reuses the primary pilot's learning rate and horizon (STEPS), and compares EAPO with
# GRPO on 4 seeds (100-103), primary metric the same AUC of held-out Avg@8. The primary pilot's MDE at 4
# seeds is 0.0069 (0.0271 at the SD's upper bound); the task's own spread is read off its GRPO arm. Its
# config samples in phases and trims the update's padding (`sampling.phase_tokens`, `train.trim_padding`,
# set before any of its runs): the primary grids keep both off, as their runs began without them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/smollm2_study}"
CONFIG=configs/smollm2_study.yaml
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
LR="${LR:-3e-6}"
horizon() {  # the grids' STEPS: as given, else the horizon the pilot report fixed (pilot_mde writes it)
    if [ -n "${STEPS:-}" ]; then echo "$STEPS"; else python benchmarks/smollm2_pilot.py --horizon; fi
}
COMMON=(--config "$CONFIG" --run.tensorboard false --no-progress)
HEADLINE_SEEDS=100,101,102,103,104,105,106,107
GRID_SEEDS=100,101,102
COMPLEX_SEEDS=100,101,102,103
FIRST_SEED=100  # the runs the analyses at the end read
CREDIT=(--positions 300 --k 8 --m 16 --problems 64 --no-progress)
# Disk (a finished SmolLM2 run holds 3.1 GB of checkpoints; the study has about 90 runs): once a grid has
# trained and evaluated a run it deletes what no later part reads. The headline's runs keep their final
# weights (seed 100's are probed at the end: analyses_end); every other grid's keep their logs, metrics,
# rollout dumps and cached evaluations only. A run a grid finds finished (shared arms) is never pruned.
KEEP_HEADLINE=(--keep-finished weights)
ARCHIVE=benchmarks/study_runs/smollm2
# The runs whose rollout dumps later analyses read (analyses_end: eapo_shaping, gradients, quadrants of the
# first seed; exploratory: EntroAdv's saturation): their dumps are archived with them (about 1.2 MB a run).
ARCHIVE_DUMPS=(runs/grpo/seed$FIRST_SEED runs/eapo/seed$FIRST_SEED runs/entro_adv/seed{100,101,102})
KEEP_GRID=(--keep-finished none)
# The issue's budget order (item 7): the headline, the isolate grid, the credit and gradient analyses, then
# the rest of the quadrant experiments, the exploratory arms and controls, the second task. One exception
# (2026-12-01): analyses_end comes first, and does nothing until seed 100's GRPO and EAPO runs are finished.
# It probes their final weights, which no archive can keep (540 MB each; a replaced machine lost every
# checkpoint once), so it runs in the first queue start after they finish, on one core while the other
# queue goes on with the headline, instead of after the headline and the isolate grid (~20 sessions later).
# It adds no work, only moves it earlier.
QUEUE=(analyses_end headline isolate analyses_start eapo_without exploratory controls complex_headline)

collect() {  # collect <report json> <name in benchmarks/results>
    python benchmarks/collect.py "$1" "$2"
}
collect_with_figures() {  # the same, and the report's markdown and the PNGs of its own folder
    python benchmarks/collect.py --figures "$1" "$2"
}
only_one() {  # only_one <part>: hold its lock until this script exits (its commands inherit it), or fail
    mkdir -p "$OUT/analyses"
    exec {lock_fd}>"$OUT/analyses/.$1.lock"
    flock -n "$lock_fd" || { echo "$1: another process is running it, left to it"; return 1; }
}
descendants() {  # descendants <pid>: every process below it
    local child
    for child in $(pgrep -P "$1" || true); do
        echo "$child"
        descendants "$child"
    done
}
running() {  # running <pid>: alive and not a zombie (an exited child its parent has not reaped yet)
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null)" && [ "${state#Z}" = "$state" ]
}
stop_queues() {  # one SIGTERM to each registered queue's scripts and eapo commands; wait until all have exited
    local file pid process waiting=() signalled=() alive=()
    for file in "$OUT"/queues/*; do
        [ -f "$file" ] || continue
        pid="$(basename "$file")"
        if ! running "$pid"; then rm -f "$file"; continue; fi  # a queue killed outright
        for process in "$pid" $(descendants "$pid"); do
            waiting+=("$process")
            # Helpers (collect, render) finish on their own in seconds: a signal mid-write could cut a file.
            case "$(ps -o args= -p "$process" || true)" in
            *"$(basename "$0")"* | */eapo\ *) signalled+=("$process") ;;
            esac
        done
    done
    if [ "${#waiting[@]}" -eq 0 ]; then
        echo "stop: no queue is running (none registered under $OUT/queues)"
        return 0
    fi
    echo "stop: SIGTERM to ${signalled[*]}; waiting for each run's step and checkpoint"
    kill -TERM "${signalled[@]}" 2>/dev/null || true
    local deadline=$((SECONDS + ${STOP_TIMEOUT:-900}))
    while :; do
        alive=()
        for process in "${waiting[@]}"; do if running "$process"; then alive+=("$process"); fi; done
        if [ "${#alive[@]}" -eq 0 ]; then
            echo "stop: every queue has stopped; start two again (above) and each run resumes at its checkpoint"
            return 0
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "stop: still running after ${STOP_TIMEOUT:-900} s: ${alive[*]}" >&2
            return 1
        fi
        sleep 2
    done
}
render_docs() {  # README Results and docs/findings.md's per-model tables, from benchmarks/results
    python benchmarks/results_section.py
    python benchmarks/findings.py --results-only
}

for part in "$@"; do
    case "$part" in headline | exploratory | controls | isolate | eapo_without | complex_headline) steps="$(horizon)" ;; esac
    case "$part" in headline | exploratory | controls | isolate | eapo_without | complex_headline | analyses_*)
        python benchmarks/study_runs.py restore "$ARCHIVE" "$OUT" ;;  # what a replaced machine lacks
    esac
    case "$part" in
    gate)
        GATE=(--config configs/smollm2_arith_3x1_t14.yaml --out benchmarks/results/smollm2_arith_3x1_t14_warmup.json)
        for phase in before warmup after; do
            python benchmarks/smollm2_arith_warmup.py --phase "$phase" "${GATE[@]}"
        done
        python benchmarks/smollm2_arith_warmup.py --phase after --split train "${GATE[@]}"
        ;;
    gate_complex)
        # The second task's gate (configs/smollm2_complex.yaml): the warm-up, then the warmed-up model on
        # validation and on train problems at the rollout temperature.
        GATE=(--config configs/smollm2_complex.yaml --out benchmarks/results/smollm2_complex_warmup.json)
        python benchmarks/smollm2_arith_warmup.py --phase warmup "${GATE[@]}"
        python benchmarks/smollm2_arith_warmup.py --phase after "${GATE[@]}"
        python benchmarks/smollm2_arith_warmup.py --phase after --split train "${GATE[@]}"
        ;;
    pilot_mde)
        # The pilot's report (benchmarks/results/compare_smollm2_pilot.json): the screen, the horizon by the
        # rule above, and the MDE of the headline's primary metric (the AUC over that horizon).
        python benchmarks/smollm2_pilot.py --runs "$OUT"
        ;;
    pilot_*)
        lr="${part#pilot_}"
        eapo compare "${COMMON[@]}" --algos grpo --focus grpo --seeds 2 --steps 250 --train.lr "$lr" \
            --out "$OUT/pilot_lr$lr" --runs-dir "$OUT/pilot_lr$lr"
        collect_with_figures "$OUT/pilot_lr$lr/compare.json" "compare_smollm2_pilot_lr$lr.json"
        ;;
    screen_*)
        lr="${part#screen_}"
        SCREEN_STEP="${SCREEN_STEP:-100}"
        metrics="$OUT/pilot_lr$lr/grpo/seed0/metrics.jsonl"
        screened() {  # the step-$SCREEN_STEP evaluation of seed 0 is written
            [ -f "$metrics" ] && python -c 'import json,sys; rows=[json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if any(r.get("step",0)>=int(sys.argv[2]) and "eval/avg@8" in r for r in rows) else 1)' "$metrics" "$SCREEN_STEP"
        }
        if screened; then echo "lr $lr: seed 0 has its step-$SCREEN_STEP evaluation"; continue; fi
        eapo compare "${COMMON[@]}" --algos grpo --focus grpo --seeds 2 --steps 250 --train.lr "$lr" \
            --out "$OUT/pilot_lr$lr" --runs-dir "$OUT/pilot_lr$lr" &
        pid=$!
        while kill -0 "$pid" 2>/dev/null; do
            if screened; then kill -TERM "$pid"; break; fi
            sleep 30
        done
        wait "$pid" || true  # a stop by SIGTERM saves a checkpoint and exits non-zero
        ;;
    headline)
        eapo compare "${COMMON[@]}" "${KEEP_HEADLINE[@]}" --algos grpo,eapo --seeds "$HEADLINE_SEEDS" \
            --steps "$steps" --train.lr "$LR" \
            --primary auc --out "$OUT/headline" --runs-dir "$OUT/runs"
        collect_with_figures "$OUT/headline/compare.json" compare_smollm2_headline.json
        render_docs
        ;;
    exploratory)
        eapo compare "${COMMON[@]}" "${KEEP_GRID[@]}" --algos grpo,eapo,dapo,forking,entro_adv --seeds "$GRID_SEEDS" --steps "$steps" \
            --train.lr "$LR" --out "$OUT/exploratory" --runs-dir "$OUT/runs"
        collect_with_figures "$OUT/exploratory/compare.json" compare_smollm2_exploratory.json
        # Issue #19 item 3: does EntroAdv's bonus min(α_e H, |Â|/κ) sit at its cap on its own rollouts?
        python benchmarks/eapo_shaping.py --entro-adv "$OUT"/runs/entro_adv/seed{100,101,102} \
            --out benchmarks/results/entro_adv_saturation_smollm2_entro_adv.json
        render_docs
        ;;
    controls)
        # The controls (issue #19 item 3): EAPO on shuffled entropies, W-REINF, EAPO's α dose-response.
        eapo ablate "${COMMON[@]}" "${KEEP_GRID[@]}" --mode controls --seeds "$GRID_SEEDS" --steps "$steps" --train.lr "$LR" \
            --out "$OUT/controls" --runs-dir "$OUT/runs"
        collect_with_figures "$OUT/controls/ablation.json" ablation_controls_smollm2.json
        render_docs
        ;;
    isolate)
        eapo ablate "${COMMON[@]}" "${KEEP_GRID[@]}" --mode isolate --random-controls --seeds "$GRID_SEEDS" --steps "$steps" --train.lr "$LR" \
            --out "$OUT/isolate" --runs-dir "$OUT/runs"
        collect_with_figures "$OUT/isolate/ablation.json" ablation_isolate_smollm2.json
        render_docs
        ;;
    eapo_without)
        eapo ablate "${COMMON[@]}" "${KEEP_GRID[@]}" --mode eapo-without --seeds "$GRID_SEEDS" --steps "$steps" --train.lr "$LR" \
            --out "$OUT/eapo_without" --runs-dir "$OUT/runs"
        collect_with_figures "$OUT/eapo_without/ablation.json" ablation_eapo_without_smollm2.json
        render_docs
        ;;
    analyses_start)
        only_one analyses_start || continue
        # Item 5 of issue #19 at the start: the credit probe (300 positions, stratified by entropy decile) and
        # the gradient cosine on the format-warmed base model every run starts from. Needs no training run.
        # Both resume after a stop (their finished pieces are journaled beside their output: rerun the part);
        # a finished one is kept rather than rerun (the cosine took 77 min at one thread).
        if [ ! -f "$OUT/analyses/credit_start/summary.json" ]; then
            eapo credit --model smollm2 --config "$CONFIG" "${CREDIT[@]}" --out "$OUT/analyses/credit_start"
        fi
        collect_with_figures "$OUT/analyses/credit_start/summary.json" credit_smollm2_start.json
        if [ ! -f "$OUT/analyses/gradients_cosine_start.json" ]; then
            eapo gradients --cosine --model smollm2 --config "$CONFIG" --prompts 8 --no-progress \
                --output "$OUT/analyses/gradients_cosine_start.json"
        fi
        collect "$OUT/analyses/gradients_cosine_start.json" gradients_cosine_smollm2_start.json
        render_docs
        ;;
    analyses_end)
        only_one analyses_end || continue
        # Item 5 at the end of the headline's first-seed GRPO and EAPO runs: the credit probe, the gradient
        # analysis on their rollout dumps, the quadrant histograms (Fig. 4), the gradient cosine on each
        # run's last checkpoint. Only once both runs are finished with their final weights on this machine
        # (a run under way would be probed at a middle step); each output already written is kept.
        first=("$OUT/runs/grpo/seed$FIRST_SEED" "$OUT/runs/eapo/seed$FIRST_SEED")
        if ! python benchmarks/study_runs.py ready "${first[@]}"; then
            echo "analyses_end: waits for the runs above (a finished run without weights needs retraining)"
            continue
        fi
        # How far EAPO's entropy term moves token advantages on SmolLM2 (its factor |Â^CA| / |Â| per quadrant),
        # written once, like each analysis below (a rerun would only change its timestamp).
        done_file="$OUT/analyses/eapo_shaping_smollm2.json"
        [ -f "$done_file" ] || python benchmarks/eapo_shaping.py "$OUT/runs/eapo/seed$FIRST_SEED" --out "$done_file"
        cp "$done_file" benchmarks/results/eapo_shaping_smollm2.json  # it records its machine itself
        # First the analyses of the rollout dumps (seconds each: measured 8-10 s at one thread on
        # 2026-12-01), then the probes of the final weights (hours each).
        for arm in grpo eapo; do
            run="$OUT/runs/$arm/seed$FIRST_SEED"
            done_file="$OUT/analyses/gradients_$arm/summary.json"
            [ -f "$done_file" ] || eapo gradients --run "$run" --out "$OUT/analyses/gradients_$arm" --max-dumps 0 --no-progress
            collect_with_figures "$done_file" "gradients_smollm2_$arm.json"
            done_file="$OUT/analyses/quadrants_$arm/summary.json"
            [ -f "$done_file" ] || eapo quadrants --run "$run" --out "$OUT/analyses/quadrants_$arm" --max-dumps 0 --no-progress
            collect_with_figures "$done_file" "quadrants_smollm2_$arm.json"
        done
        render_docs
        for arm in grpo eapo; do
            run="$OUT/runs/$arm/seed$FIRST_SEED"
            done_file="$OUT/analyses/credit_end_$arm/summary.json"
            [ -f "$done_file" ] || eapo credit --run "$run" "${CREDIT[@]}" --out "$OUT/analyses/credit_end_$arm"
            collect_with_figures "$done_file" "credit_smollm2_end_$arm.json"
            done_file="$OUT/analyses/gradients_cosine_end_$arm.json"
            [ -f "$done_file" ] || eapo gradients --cosine --run "$run" --prompts 8 --no-progress --output "$done_file"
            collect "$done_file" "gradients_cosine_smollm2_end_$arm.json"
        done
        render_docs
        ;;
    analyses)
        bash "$0" analyses_start analyses_end
        ;;
    queue)
        others=0  # queues other than this one (and than its own subshells, which ps shows under its name)
        for pid in $(pgrep -f '^bash ([^ ]*/)?smollm2_study\.sh queue$' || true); do
            parent="$(ps -o ppid= -p "$pid" | tr -d ' ' || true)"  # empty: gone since (the $(...) above)
            if [ "$pid" != "$$" ] && [ -n "$parent" ] && [ "$parent" != "$$" ]; then others=$((others + 1)); fi
        done
        if [ "$others" -ge 2 ]; then
            echo "queue: two are running already (pgrep -af smollm2_study.sh); never more than two" >&2
            exit 2
        fi
        mkdir -p "$OUT/queues"
        echo "$$" > "$OUT/queues/$$"  # how `stop` finds this queue; gone when it exits (also on SIGTERM)
        trap 'rm -f "$OUT/queues/$$"' EXIT
        for next in "${QUEUE[@]}"; do
            echo "queue: $next ($(date -u +%FT%TZ))"
            bash "$0" "$next" || echo "queue: $next ended with rc $? (75: the other process holds its last runs)"
        done
        ;;
    stop)
        stopped=0
        stop_queues || stopped=$?
        bash "$0" archive  # the finished runs, also when some process outlived STOP_TIMEOUT
        exit "$stopped"
        ;;
    archive)
        python benchmarks/study_runs.py archive "$OUT" "$ARCHIVE" --dumps "${ARCHIVE_DUMPS[@]}"
        ;;
    complex_headline)
        eapo compare --config configs/smollm2_complex.yaml --run.tensorboard false --no-progress "${KEEP_GRID[@]}" \
            --algos grpo,eapo \
            --seeds "$COMPLEX_SEEDS" --steps "$steps" --train.lr "$LR" --primary auc \
            --out "$OUT/complex_headline" --runs-dir "$OUT/complex_runs"
        collect_with_figures "$OUT/complex_headline/compare.json" compare_smollm2_complex_headline.json
        render_docs
        ;;
    *)
        echo "unknown part: $part (gate, gate_complex, screen_<lr>, pilot_<lr>, pilot_mde, headline, exploratory, controls, isolate, eapo_without, analyses_start, analyses_end, analyses, complex_headline, queue, stop, archive)" >&2
        exit 2
        ;;
    esac
done
