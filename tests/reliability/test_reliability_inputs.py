"""Bad input gives one clear message at the edge: exit code 2, the file/field/value named, no traceback.

Every case goes through `eapo.cli.main` exactly as the `eapo` command does; one case also runs as a real
subprocess to check the exit code and the absence of a traceback in the process's own output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eapo.cli import main
from eapo.errors import ConfigError, ModelLoadError
from eapo.models.char_tokenizer import build_char_tokenizer
from eapo.models.config import TinyConfig
from eapo.models.tiny import build_tiny_model

from .reliability_support import start_eapo, tiny_values, write_config


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny model folder (save_pretrained), the base of the broken-model cases."""
    folder = tmp_path_factory.mktemp("model") / "tiny"
    tokenizer = build_char_tokenizer(["Calculate 0123456789 +.\n<answer></answer>"])
    model = build_tiny_model(TinyConfig(n_layer=1, n_embd=16, n_head=1), tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _copy(folder: Path, target: Path) -> Path:
    target.mkdir()
    for file in folder.iterdir():
        (target / file.name).write_bytes(file.read_bytes())
    return target


def _corrupt_weights(folder: Path, target: Path) -> Path:
    _copy(folder, target)
    (target / "model.safetensors").write_bytes(b"not a safetensors file" * 4)
    return target


def _without_eos(folder: Path, target: Path) -> Path:
    _copy(folder, target)
    config = json.loads((target / "tokenizer_config.json").read_text())
    config.pop("eos_token")
    config.pop("pad_token")
    (target / "tokenizer_config.json").write_text(json.dumps(config))
    return target


GOOD_ROW = '{"prompt": "1 + 1?", "answer": "2"}\n'
# Files a case can name as {tmp}/<name>: bad configs and bad data sets.
FILES = {
    "broken.yaml": "train:\n  lr: [1, 2\n",
    "typo.yaml": "train:\n  lrr: 0.1\n",
    "bad.jsonl": GOOD_ROW + '{"prompt": "2 + 2?", "answer": \n',
    "missing.jsonl": '{"prompt": "1 + 1?"}\n',
    "number.jsonl": '{"prompt": 7, "answer": "7"}\n',
    "blank.jsonl": "\n\n",
    "small.jsonl": GOOD_ROW * 2,
    "duplicate.yaml": "train:\n  lr: 0.1\nrun:\n  seed: 1\ntrain:\n  steps: 3\n",
    "section_list.yaml": "extends: {config}\ntrain: [1, 2, 3]\n",
    "empty.yaml": "# nothing but a comment\n",
    "a_file": "not a folder\n",
}
# Files that are not UTF-8 (Latin-1 bytes).
BYTE_FILES = {
    "latin1.yaml": "train:\n  lr: 0.1  # r\u00e9glage\n".encode("latin-1"),
    "latin1.jsonl": GOOD_ROW.encode() + '{"prompt": "caf\u00e9?", "answer": "1"}\n'.encode("latin-1"),
}
HUGE = "x" * 100_000  # a 100 kB value: the message must stay readable

# (case id, arguments, fragments the one error line must contain). "{config}" is a valid tiny setting, so
# only the named fault is wrong; "{tmp}" the test's folder; "{model}", "{corrupt}", "{no_eos}" model folders.
CASES: list[tuple[str, list[str], list[str]]] = [
    (
        "malformed_yaml",
        ["train", "--config", "{tmp}/broken.yaml"],
        ["broken.yaml", "malformed YAML at line 3, column 1"],
    ),
    (
        "unknown_field",
        ["train", "--config", "{tmp}/typo.yaml"],
        ["typo.yaml", "unknown field 'train.lrr'", "did you mean 'train.lr'"],
    ),
    (
        "unknown_override",
        ["train", "--config", "{config}", "--train.grup_size", "4"],
        ["unknown field 'train.grup_size'", "did you mean 'train.group_size'"],
    ),
    (
        "mistyped_value",
        ["train", "--config", "{config}", "--train.group_size", "eight"],
        ["train.group_size", "expected an integer", "'eight'"],
    ),
    (
        "group_size_1",
        ["train", "--config", "{config}", "--train.group_size", "1"],
        ["train.group_size = 1", "expected >= 2"],
    ),
    ("negative_lr", ["train", "--config", "{config}", "--train.lr", "-1e-3"], ["train.lr = -0.001", "> 0"]),
    (
        "negative_alpha",
        ["train", "--config", "{config}", "--algo.alpha", "-0.5"],
        ["algo.alpha = -0.5", ">= 0"],
    ),
    (
        "top_fraction_above_1",
        ["train", "--config", "{config}", "--algo", "forking", "--algo.shaper_params.top_fraction", "1.5"],
        ["algo.shaper_params.top_fraction = 1.5", "(0, 1]"],
    ),
    (
        "top_fraction_0",
        ["train", "--config", "{config}", "--algo", "forking", "--algo.shaper_params.top_fraction", "0"],
        ["algo.shaper_params.top_fraction = 0", "> 0"],
    ),
    (
        "quadrant_quantile_above_1",
        [
            "train",
            "--config",
            "{config}",
            "--algo",
            "quadrant",
            "--algo.shaper_params.threshold",
            "[batch_quantile, 2]",
        ],
        ["algo.shaper_params.threshold = ['batch_quantile', 2]", "(0, 1]"],
    ),
    (
        "unknown_task",
        ["train", "--config", "{config}", "--task.source", "chain_summ"],
        ["task.source = 'chain_summ'", "did you mean 'chain_sum'"],
    ),
    (
        "jsonl_broken_line",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/bad.jsonl"],
        ["bad.jsonl, line 2", "invalid JSON"],
    ),
    (
        "jsonl_missing_field",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/missing.jsonl"],
        ["missing.jsonl, line 1", "missing field 'answer'"],
    ),
    (
        "jsonl_non_string_prompt",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/number.jsonl"],
        ["number.jsonl, line 1", "field 'prompt' must be a string", "int 7"],
    ),
    (
        "jsonl_empty",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/blank.jsonl"],
        ["blank.jsonl: empty file"],
    ),
    (
        "dataset_too_small_for_the_splits",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/small.jsonl"],
        ["small.jsonl: 2 rows cannot give task.num_eval = 4", "lower task.num_eval"],
    ),
    (
        "model_folder_without_config",
        ["train", "--config", "{config}", "--model", "{tmp}"],
        ["no config.json", "save_pretrained"],
    ),
    (
        "model_with_corrupt_weights",
        ["train", "--config", "{config}", "--model", "{corrupt}"],
        ["could not load a causal LM", "corrupt"],
    ),
    (
        "tokenizer_without_eos_or_pad",
        ["train", "--config", "{config}", "--model", "{no_eos}"],
        ["no-eos", "has no eos token", "set eos_token in its tokenizer_config.json"],
    ),
    ("config_file_missing", ["train", "--config", "{tmp}/none.yaml"], ["config file not found", "none.yaml"]),
    (
        "stray_argument",
        ["train", "--config", "{config}", "lr=0.1"],
        ["unexpected argument 'lr=0.1'", "--section.field VALUE"],
    ),
    ("resume_not_a_run", ["train", "--resume", "{tmp}"], ["--resume", "not a run folder"]),
    ("eval_bad_k", ["eval", "--model", "{model}", "--k", "one"], ["--k 'one'", "comma-separated integers"]),
    ("eval_without_target", ["eval", "--config", "{config}"], ["eapo eval needs --run RUN_DIR or --model"]),
    # Issue #20, class 3: values that would make a run meaningless or crash later, refused up front.
    (
        "training_temperature_0",
        ["train", "--config", "{config}", "--sampling.temperature", "0"],
        ["sampling.temperature = 0.0", "> 0", "greedy"],
    ),
    (
        "training_temperature_inf",
        ["train", "--config", "{config}", "--sampling.temperature", ".inf"],
        ["sampling.temperature = inf is not a finite number"],
    ),
    (
        "lr_1e400",
        ["train", "--config", "{config}", "--train.lr", "1e400"],
        ["train.lr = inf is not a finite"],
    ),
    ("lr_nan", ["train", "--config", "{config}", "--train.lr", ".nan"], ["train.lr = nan is not a finite"]),
    (
        "alpha_nan",
        ["train", "--config", "{config}", "--algo.alpha", ".nan"],
        ["algo.alpha = nan is not a finite number"],
    ),
    (
        "clip_low_1",
        ["train", "--config", "{config}", "--algo.clip_low", "1.0"],
        ["algo.clip_low = 1.0", "in [0, 1)"],
    ),
    (
        "clip_high_negative",
        ["train", "--config", "{config}", "--algo.clip_high", "-0.1"],
        ["algo.clip_high = -0.1", ">= 0"],
    ),
    ("negative_seed", ["train", "--config", "{config}", "--seed", "-1"], ["run.seed = -1", "[0, "]),
    (
        "seed_2_to_64",
        ["train", "--config", "{config}", "--seed", str(2**64)],
        ["run.seed = 18446744073709551616"],
    ),
    (
        "negative_task_seed",
        ["train", "--config", "{config}", "--task.seed", "-5"],
        ["task.seed = -5", "[0, "],
    ),
    (
        "empty_stop_string",
        ["train", "--config", "{config}", "--sampling.stop_strings", "['']"],
        ["sampling.stop_strings[0] = ''", "non-empty"],
    ),
    (
        "empty_model_name",
        ["train", "--config", "{config}", "--model", "''"],
        ["model.name = ''", "non-empty"],
    ),
    (
        "absurd_sizes",
        [
            "train",
            "--config",
            "{config}",
            "--train.prompts_per_step",
            "100000000",
            "--train.group_size",
            "100000000",
        ],
        ["one training step or evaluation needs at least", "GiB", "lower these sizes"],
    ),
    (
        "absurd_generation_length",
        ["train", "--config", "{config}", "--sampling.max_new_tokens", "10000000000"],
        ["one training step or evaluation needs at least", "sampling.max_new_tokens 10000000000"],
    ),
    (
        "absurd_generated_task",
        ["train", "--config", "{config}", "--task.source", "chain_sum", "--task.num_train", "100000000000"],
        ["one training step or evaluation needs at least", "task.num_train 100000000000"],
    ),
    (
        "unknown_loss_param",
        ["train", "--config", "{config}", "--algo.loss_params.foo", "1"],
        ["algo.loss_params {'foo': 1} (ppo_clip)", "unknown parameter(s) foo"],
    ),
    (
        "eval_max_new_tokens_negative",
        ["train", "--config", "{config}", "--eval.max_new_tokens", "-5"],
        ["eval.max_new_tokens = -5", ">= 1"],
    ),
    (
        "tiny_n_head_not_a_divisor",
        ["train", "--config", "{config}", "--model.tiny.n_head", "3"],
        ["model.tiny.n_head = 3", "divisor of n_embd"],
    ),
    (
        "duplicate_yaml_key",
        ["train", "--config", "{tmp}/duplicate.yaml"],
        ["duplicate.yaml", "duplicate key 'train'"],
    ),
    (
        "broken_section_under_an_override",
        ["train", "--config", "{tmp}/section_list.yaml", "--train.lr", "0.1"],
        ["section_list.yaml", "train: expected a mapping of fields, got [1, 2, 3]"],
    ),
    ("empty_config_file", ["train", "--config", "{tmp}/empty.yaml"], ["empty.yaml: the file is empty"]),
    (
        "config_not_utf8",
        ["train", "--config", "{tmp}/latin1.yaml"],
        ["latin1.yaml", "not UTF-8", "byte 0xe9"],
    ),
    (
        "jsonl_not_utf8",
        ["train", "--config", "{config}", "--task.source", "jsonl:{tmp}/latin1.jsonl"],
        ["latin1.jsonl, line 2: not UTF-8", "save the file as UTF-8"],
    ),
    # Issue #20, class 1: a run folder stays inside run.output_dir.
    (
        "run_name_escapes",
        ["train", "--config", "{config}", "--run.name", "../../x"],
        ["run.name = '../../x'"],
    ),
    ("run_name_absolute", ["train", "--config", "{config}", "--run.name", "/tmp/x"], ["one folder name"]),
    ("run_name_dotdot", ["train", "--config", "{config}", "--run.name", ".."], ["one folder name"]),
    # Issue #20, class 5: output paths checked before the model loads.
    (
        "output_dir_under_a_file",
        ["train", "--config", "{config}", "--run.output_dir", "{tmp}/a_file/runs"],
        ["run.output_dir", "a_file, which is a file"],
    ),
    (
        "output_dir_is_a_file",
        ["train", "--config", "{config}", "--run.output_dir", "{tmp}/a_file"],
        ["run.output_dir", "a_file is a file"],
    ),
    (
        "eval_output_is_a_folder",
        ["eval", "--model", "{model}", "--output", "{tmp}"],
        ["--output", "is a folder"],
    ),
    (
        "eval_output_under_a_file",
        ["eval", "--model", "{model}", "--output", "{tmp}/a_file/report.json"],
        ["--output", "a_file is a file; give a folder"],
    ),
    (
        "huge_value_is_cut",
        ["train", "--config", "{config}", "--train.lr", HUGE],
        ["train.lr", "characters cut"],
    ),
]


@pytest.mark.parametrize(("argv", "fragments"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_bad_input_is_one_message_and_exit_code_2(
    argv: list[str],
    fragments: list[str],
    tmp_path: Path,
    problems_file: Path,
    saved_model: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    runs = tmp_path / "runs"
    base_config = str(write_config(tmp_path / "base.yaml", tiny_values(problems_file, runs)))
    for name, text in FILES.items():
        (inputs / name).write_text(text.replace("{config}", base_config))
    for name, data in BYTE_FILES.items():
        (inputs / name).write_bytes(data)
    places = {
        "{config}": base_config,
        "{tmp}": str(inputs),
        "{model}": str(saved_model),
    }
    if "{corrupt}" in argv:
        places["{corrupt}"] = str(_corrupt_weights(saved_model, tmp_path / "corrupt"))
    if "{no_eos}" in argv:
        places["{no_eos}"] = str(_without_eos(saved_model, tmp_path / "no-eos"))
    for key, value in places.items():
        argv = [arg.replace(key, value) for arg in argv]

    code = main([*argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.startswith("eapo: error:")]
    assert len(errors) == 1, err
    assert len(errors[0]) <= 1100, "an error message stays readable, whatever it echoes"
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert "Traceback" not in err
    assert not runs.exists(), "a failed start must not leave a run folder behind"


def test_resume_without_a_valid_checkpoint_names_what_was_found(
    tmp_path: Path, problems_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "runs" / "run"
    (run / "checkpoints" / "step_000002").mkdir(parents=True)  # a folder without a manifest
    write_config(run / "config.yaml", tiny_values(problems_file, tmp_path / "runs"))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 2
    message = capsys.readouterr().err.strip()
    assert message.startswith("eapo: error: --resume")
    assert "no valid checkpoint" in message and "step_000002: no manifest.json" in message
    assert "start a new run without --resume" in message


@pytest.mark.parametrize("position", ["before", "after"])
def test_debug_shows_the_traceback(position: str, tmp_path: Path, problems_file: Path) -> None:
    config = write_config(tmp_path / "base.yaml", tiny_values(problems_file, tmp_path / "runs"))
    argv = ["train", "--config", str(config), "--train.lr", "-1"]
    argv = ["--debug", *argv] if position == "before" else [*argv, "--debug"]
    with pytest.raises(ConfigError, match=r"train\.lr = -1\.0 is out of range"):
        main(argv)


def test_debug_keeps_the_model_error_and_its_cause(
    tmp_path: Path, problems_file: Path, saved_model: Path
) -> None:
    config = write_config(tmp_path / "base.yaml", tiny_values(problems_file, tmp_path / "runs"))
    broken = _corrupt_weights(saved_model, tmp_path / "corrupt")
    with pytest.raises(ModelLoadError) as caught:
        main(["--debug", "train", "--config", str(config), "--model", str(broken), "--no-progress"])
    assert caught.value.__cause__ is not None  # the library's own error stays reachable for a bug report


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    log = tmp_path / "eapo.log"
    process = start_eapo(["eval", "--model", "tiny", "--k", "one"], log)
    assert process.wait(timeout=120) == 2
    assert log.read_text() == "eapo: error: --k 'one': expected comma-separated integers >= 1, e.g. --k 1,8\n"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["eval", "--model", "tiny", "--num-problems", "-3"], "--num-problems: expected a positive integer"),
        (["eval", "--model", "tiny", "--num-problems", "0"], "--num-problems: expected a positive integer"),
        (["credit", "--model", "tiny", "--problems", "-1"], "--problems: expected a positive integer"),
        (["credit", "--model", "tiny", "--bootstrap", "0"], "--bootstrap: expected a positive integer"),
        (["credit", "--model", "tiny", "--positions", "2.5"], "--positions: expected a positive integer"),
        (["credit", "--model", "tiny", "--seed", "-1"], "--seed: expected an integer >= 0"),
        (["quadrants", "--run", ".", "--max-dumps", "-2"], "--max-dumps: expected an integer >= 0"),
        (["compare", "--final-samples", "0"], "--final-samples: expected a positive integer"),
        (["gradients", "--cosine", "--prompts", "-4"], "--prompts: expected a positive integer"),
        (["compare", "--seeds", "0"], "--seeds"),
        (["compare", "--seeds", "1,-2"], "--seeds"),
    ],
    ids=lambda v: "_".join(v[:2]).strip("-") if isinstance(v, list) else None,
)
def test_counts_at_the_command_line_are_positive_integers(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue #20, class 4: a negative count used to slice from the end, 0 to fall back to a default."""
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert expected in capsys.readouterr().err
