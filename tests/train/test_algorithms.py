"""The `algo` section's edge checks: one message per fault, the same in every host that picks a shaper."""

from __future__ import annotations

import dataclasses

import pytest

from eapo.errors import ConfigError, check_choice
from eapo.train.algorithms import AlgoConfig, check_shaper_params, eapo_alpha_phi, validate_algo_config


def test_check_choice_names_field_value_closest_and_all() -> None:
    check_choice("algo.name", "eapo", ["grpo", "eapo"])
    with pytest.raises(ConfigError) as err:
        check_choice("algo.agg", "token_man", ["token_mean", "seq_mean_token_mean"], "see PAPER.md Eq. 2")
    assert str(err.value) == (
        "algo.agg = 'token_man' is unknown: did you mean 'token_mean'? choose from token_mean, "
        "seq_mean_token_mean; see PAPER.md Eq. 2"
    )


def test_shaper_params_pass_through_when_valid() -> None:
    assert check_shaper_params("eapo", {"alpha": 0.3, "phi": 4}, field="algo.shaper_params") == {
        "alpha": 0.3,
        "phi": 4,
    }
    assert check_shaper_params("grpo", {}, field="x") == {}


@pytest.mark.parametrize(
    ("shaper", "params", "labels", "message"),
    [
        # a bad value names the field the user wrote (its label) and the shaper's own rule
        (
            "eapo",
            {"alpha": -1.0},
            {"alpha": "algo.alpha"},
            "algo.alpha = -1.0 is not valid for shaper 'eapo': ",
        ),
        (
            "eapo",
            {"phi": 0.0},
            {},
            "algo.shaper_params.phi = 0.0 is not valid for shaper 'eapo': phi must be > 0",
        ),
        ("forking", {"top_fraction": -0.2}, {}, "algo.shaper_params.top_fraction = -0.2 is not valid"),
        ("quadrant", {"quadrants": ["PXR"]}, {}, "algo.shaper_params.quadrants = ['PXR'] is not valid"),
        # an unknown name lists what the shaper takes
        (
            "forking",
            {"alpha": 1.0},
            {},
            "algo.shaper_params.alpha = 1.0 is not a parameter of shaper 'forking': it takes top_fraction",
        ),
        (
            "grpo",
            {"phi": 2.0},
            {"phi": "algo.phi"},
            "algo.phi = 2.0 is not a parameter of shaper 'grpo': it takes no parameters",
        ),
    ],
)
def test_bad_shaper_params_name_field_value_and_rule(
    shaper: str, params: dict, labels: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        check_shaper_params(shaper, params, field="algo.shaper_params", labels=labels)
    assert str(err.value).startswith(message)


def test_alpha_and_phi_go_only_to_shapers_that_take_both() -> None:
    """EAPO's α and φ (Eq. 6-7) are meaningless to EntroAdv, whose `alpha` is another coefficient."""
    for shaper in ("eapo", "eapo_shuffled", "quadrant"):
        assert eapo_alpha_phi(shaper, 0.3, 4.0) == {"alpha": 0.3, "phi": 4.0}
    for shaper in ("grpo", "entro_adv", "forking", "nonesuch"):
        assert eapo_alpha_phi(shaper, 0.3, 4.0) == {}


def test_validate_algo_config_resolves_and_checks_ranges() -> None:
    algorithm = validate_algo_config(AlgoConfig(name="dapo", clip_high=0.3))
    assert (algorithm.name, algorithm.clip_high, algorithm.refill_rounds) == ("dapo", 0.3, 4)
    with pytest.raises(ConfigError, match=r"algo\.clip_low = 1\.0 is out of range: expected in \[0, 1\)"):
        validate_algo_config(AlgoConfig(name="grpo", clip_low=1.0))
    with pytest.raises(ConfigError, match=r"algo\.loss_params .*kl_cov"):
        validate_algo_config(AlgoConfig(name="kl_cov", loss_params={"nonesuch": 1}))


def test_trl_config_reports_alpha_with_the_same_message() -> None:
    """TRL's EAPOConfig calls the same check: its message names its own field."""
    pytest.importorskip("trl")
    from eapo.integrations.trl import EAPOConfig

    with pytest.raises(ConfigError) as err:
        EAPOConfig(output_dir="unused", eapo_algo="eapo", eapo_alpha=-1.0, use_cpu=True, report_to=[])
    assert str(err.value).startswith("EAPOConfig.eapo_alpha = -1.0 is not valid for shaper 'eapo': ")
    with pytest.raises(ConfigError, match=r"EAPOConfig\.eapo_algo = 'epao' is unknown: did you mean 'eapo'"):
        EAPOConfig(output_dir="unused", eapo_algo="epao", use_cpu=True, report_to=[])


def test_overlong_window_defaults_to_a_quarter_of_the_response_budget() -> None:
    from eapo.train.algorithms import ALGORITHMS

    assert ALGORITHMS["dapo"].overlong_window(96) == 24  # -1: a quarter of max_new_tokens
    assert ALGORITHMS["grpo"].overlong_window(96) == 0  # off
    assert dataclasses.replace(ALGORITHMS["dapo"], overlong_buffer=10).overlong_window(96) == 10
