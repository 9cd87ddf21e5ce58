"""Config loading: YAML + command-line overrides, typed, with errors that name the field."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eapo.errors import ConfigError
from eapo.train.algorithms import ALGORITHMS, resolve_algorithm
from eapo.train.config import Config, dump_yaml, load_config, parse_overrides

REPO = Path(__file__).resolve().parents[2]


def test_defaults_are_valid() -> None:
    config = load_config()
    assert isinstance(config, Config)
    assert config.algo.name == "eapo"
    assert config.model.name == "tiny"  # the embedded default is the tiny preset


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path: Path, tmp_path: Path) -> None:
    """Every shipped config validates, names an algorithm that resolves, and survives a round trip through
    the run folder's config.yaml (dump_yaml, then load) unchanged, so a resumed run trains the same run."""
    config = load_config(path)
    assert resolve_algorithm(config.algo).name == config.algo.name
    dumped = tmp_path / "config.yaml"
    dumped.write_text(dump_yaml(config))
    assert load_config(dumped) == config


def test_overrides_are_typed() -> None:
    config = load_config(
        overrides=["--train.lr", "1e-6", "--algo", "grpo", "--steps=7", "--task.params.max_terms", "3"]
    )
    assert config.train.lr == pytest.approx(1e-6)
    assert isinstance(config.train.lr, float)
    assert config.algo.name == "grpo"
    assert config.train.steps == 7
    assert config.task.params["max_terms"] == 3
    assert config.task.params["min_terms"] == 2  # merged into the default params, not replacing them


def test_parse_overrides_nested() -> None:
    assert parse_overrides(["--a.b.c", "true", "--x", "[1, 2]"]) == {"a": {"b": {"c": True}}, "x": [1, 2]}


def test_typo_names_the_field_and_suggests(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown field 'train\.lrr'.*did you mean 'train\.lr'"):
        load_config(path)


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown field 'trian'"):
        load_config(overrides={"trian": {"lr": 1.0}})


def test_wrong_type_names_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.group_size: expected an integer, got 'eight'"):
        load_config(overrides=["--train.group_size", "eight"])


@pytest.mark.parametrize(
    ("override", "field"),
    [
        (["--train.group_size", "1"], "train.group_size"),
        (["--train.lr", "-1e-6"], "train.lr"),
        (["--sampling.top_p", "1.5"], "sampling.top_p"),
        (["--eval.k", "0"], "eval.k"),
    ],
)
def test_out_of_range_names_field(override: list[str], field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.") + ".*out of range"):
        load_config(overrides=override)


def test_unknown_algorithm_suggests() -> None:
    with pytest.raises(ConfigError, match=r"algo\.name = 'eapoo' is unknown: did you mean 'eapo'"):
        load_config(overrides=["--algo", "eapoo"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--algo.alpha", "-0.1"], "algo.alpha = -0.1 is not valid for shaper 'eapo': alpha must be >= 0"),
        (["--algo.phi", "0"], "algo.phi = 0.0 is not valid for shaper 'eapo': phi must be > 0"),
        (["--algo", "grpo", "--algo.alpha", "0.3"], "algo.alpha = 0.3 is not a parameter of shaper 'grpo'"),
    ],
)
def test_alpha_and_phi_are_checked_by_the_shaper(override: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_config(overrides=override)


def test_malformed_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: malformed YAML at line"):
        load_config(path)


def test_dump_roundtrip(tmp_path: Path) -> None:
    config = load_config(overrides=["--algo", "forking", "--train.lr", "3e-4"])
    path = tmp_path / "c.yaml"
    path.write_text(dump_yaml(config))
    assert load_config(path) == config


def test_every_algorithm_resolves() -> None:
    config = load_config()
    for name in ALGORITHMS:
        config.algo.name = name
        algorithm = resolve_algorithm(config.algo)
        assert algorithm.name == name


def test_eapo_shortcuts_reach_shaper() -> None:
    config = load_config(overrides=["--algo.alpha", "0.3", "--algo.phi", "4"])
    algorithm = resolve_algorithm(config.algo)
    assert algorithm.shaper == "eapo"
    assert algorithm.shaper_params == {"alpha": 0.3, "phi": 4.0}


def test_bad_quadrant_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="shaper_params"):
        load_config(overrides=["--algo", "quadrant", "--algo.shaper_params.quadrants", "[PXR]"])


def test_builtin_names_and_extends(tmp_path: Path) -> None:
    smoke = load_config("smoke")
    default = load_config()
    assert smoke.model.tiny.n_layer == 1 and smoke.train.steps == 3
    assert smoke.task.source == default.task.source  # inherited from tiny through `extends: tiny`
    child = tmp_path / "child.yaml"
    child.write_text("extends: smoke\ntrain:\n  steps: 7\n")
    loaded = load_config(child)
    assert (
        loaded.train.steps == 7
        and loaded.model.tiny.n_layer == 1
        and loaded.task.source == default.task.source
    )
    with pytest.raises(ConfigError, match="built-in configs: smoke, tiny"):
        load_config("nonesuch")
    loop = tmp_path / "loop.yaml"
    loop.write_text("extends: loop.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(loop)


def test_reading_a_config_does_not_import_transformers() -> None:
    # `eapo train --typo` is answered at once: configs load without transformers (eapo/_lazy.py); torch
    # comes in with the shaper and loss registries that validation checks names against.
    code = (
        "import sys\nfrom eapo.train.config import load_config\nload_config('smoke')\n"
        "heavy = sorted(m for m in ('transformers', 'trl', 'datasets') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
