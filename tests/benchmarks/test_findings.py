"""docs/findings.md's claims say what they test: the block rendered from benchmarks/results/ is current,
every row states its criterion, Prediction 3 is judged in the paper's direction, rows the math guarantees
are marked "true by construction", and the gradient-cosine table applies its pre-stated threshold."""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # the scripts import bench_utils as a sibling module
bu = importlib.import_module("bench_utils")


def _findings() -> ModuleType:
    return importlib.import_module("findings")


def test_the_docs_results_block_matches_benchmarks_results() -> None:
    f = _findings()
    text = (REPO_ROOT / "docs" / "findings.md").read_text()
    assert bu.current_block(text, f.RESULTS_START, f.RESULTS_END) == f.results_block(), (
        "stale: run `python benchmarks/findings.py --results-only`"
    )
    assert f.main(["--check"]) == 0


def _isolate_report(entropy: dict[str, list[float]]) -> dict[str, Any]:
    runs = {
        arm: [
            {"seed": seed, "final_avg": 0.3 + 0.01 * seed, "final_entropy": value}
            for seed, value in enumerate(values)
        ]
        for arm, values in entropy.items()
    }
    return {
        "kind": "ablation",
        "mode": "isolate",
        "reference": "grpo",
        "settings": {"steps": 20, "seeds": [0, 1, 2], "init": "shared", "final_eval": {"samples": 8}},
        "runs": runs,
    }


def _prediction3(tmp_path: Path, entropy: dict[str, list[float]]) -> list[str]:
    f = _findings()
    (tmp_path / "ablation_isolate_tiny.json").write_text(json.dumps(_isolate_report(entropy)))
    return next(row for row in f.ablation_claims(tmp_path) if row[0].startswith("Prediction 3"))


def test_prediction_3_is_judged_in_the_papers_direction(tmp_path: Path) -> None:
    base = {
        "grpo": [0.07, 0.07, 0.07],
        "isolate_PLR": [0.05, 0.051, 0.049],
        "isolate_NLR": [0.08, 0.081, 0.079],
    }
    held = _prediction3(
        tmp_path, {**base, "isolate_PHR": [0.04, 0.041, 0.039], "isolate_NHR": [0.09, 0.091, 0.092]}
    )
    assert held[-1] == "held"
    # Positive quadrants ending ABOVE the negative ones is the opposite of the paper's claim: not held
    # (the old criterion accepted a difference in either direction).
    reverse = {"isolate_PHR": [0.09, 0.091, 0.092], "isolate_NHR": [0.04, 0.041, 0.039]}
    assert _prediction3(tmp_path, {**base, **reverse})[-1] == "not held"
    assert "isolate_PHR < isolate_NHR" in held[2]


def test_every_claim_row_states_its_criterion_even_before_it_is_run(tmp_path: Path) -> None:
    rows = _findings().ablation_claims(tmp_path)  # no ablation reports here
    assert rows and all(row[-1] == "not run yet" for row in rows)
    assert all(len(row[2]) > 20 for row in rows), [row[0] for row in rows if len(row[2]) <= 20]


def _credit(below: dict[str, Any] | None, exceed_all: float = 0.0) -> dict[str, Any]:
    summary: dict[str, Any] = {"all": {"n": 10, "exceed_fraction": exceed_all, "point_exceed_fraction": 0.0}}
    if below is not None:
        summary["below_log2"] = below
        summary["at_or_above_log2"] = {"n": 10 - below["n"]}
    return summary


def test_proposition_1_is_tested_only_below_log_2(tmp_path: Path) -> None:
    f = _findings()
    below = {"n": 7, "exceed_fraction": 0.0, "point_exceed_fraction": 0.0}
    tested, construction = f.prop1_rows("eapo", _credit(below), tmp_path)
    assert tested[-1] == "held" and "0/7 positions with H_t < log 2" in tested[3]
    assert construction[-1] == f.TRUE_BY_CONSTRUCTION and "3/10" in construction[3]
    failing = {"n": 7, "exceed_fraction": 2 / 7, "point_exceed_fraction": 2 / 7}
    assert f.prop1_rows("eapo", _credit(failing), tmp_path)[0][-1] == "not held"
    # A summary from before the split: 0 exceedances overall imply 0 below log 2; otherwise untested.
    assert f.prop1_rows("eapo", _credit(None), tmp_path)[0][-1] == "held"
    assert f.prop1_rows("eapo", _credit(None, exceed_all=0.1), tmp_path)[0][-1] == "not tested"


def _cosine_result(cosine: float) -> dict[str, Any]:
    def entry(value: float | None) -> dict[str, Any]:
        return {"cosine": value, "norm_ratio": 1.1, "norm": 1.0}

    parts = ("all", "PHR", "PLR", "NHR", "NLR", "ZERO")
    return {
        "algorithms": {
            "eapo": {
                "shaper_params": {"alpha": 0.2, "phi": 2.0},
                "gradient": {p: entry(cosine) for p in parts},
                "update": {p: entry(cosine) for p in parts},
            }
        },
        "control": {"gradient": {p: entry(0.15) for p in parts}, "update": {p: entry(0.1) for p in parts}},
    }


def test_the_gradient_cosine_verdict_uses_the_pre_stated_threshold() -> None:
    f = _findings()
    assert "**not separable**" in f.cosine_verdict(_cosine_result(0.9999))
    assert "**separable**" in f.cosine_verdict(_cosine_result(0.95))
    assert math.isclose(f.SEPARABLE_BELOW, 0.99)


def test_each_model_has_its_own_column_in_the_grid_claims(tmp_path: Path) -> None:
    """A SmolLM2 isolate grid fills the SmolLM2 column only; the tiny column says what would fill it."""
    f = _findings()
    entropy = {
        "grpo": [0.07, 0.07, 0.07],
        "isolate_PLR": [0.05, 0.051, 0.049],
        "isolate_NLR": [0.08, 0.081, 0.079],
        "isolate_PHR": [0.04, 0.041, 0.039],
        "isolate_NHR": [0.09, 0.091, 0.092],
    }
    (tmp_path / "ablation_isolate_smollm2.json").write_text(json.dumps(_isolate_report(entropy)))
    header, rows = f.claims_per_model(f.ablation_claims, tmp_path)
    assert header[3:] == [f"{name}: {head}" for name in f.MODELS.values() for head in f.CLAIM_HEADER[3:]]
    prediction3 = next(row for row in rows if row[0].startswith("Prediction 3"))
    tiny_ours, tiny_verdict, smollm2_ours, smollm2_verdict = prediction3[3:]
    assert tiny_verdict == "not run yet" and "ablation_isolate_tiny.json" in tiny_ours
    assert smollm2_verdict == "held" and "ablation_isolate_smollm2.json" in smollm2_ours
    table3 = next(row for row in rows if row[0].startswith("Table 3"))
    assert "bash benchmarks/smollm2_study.sh eapo_without" in table3[5] and table3[6] == "not run yet"


def _headline_report(verdict: str, estimate: float) -> dict[str, Any]:
    test = {
        "arm": "eapo", "reference": "grpo", "verdict": verdict, "p_holm": 0.01, "seeds": 8,
        "interval": {"mean": estimate, "low": estimate - 0.01, "high": estimate + 0.01},
    }  # fmt: skip
    power = {"rows": [{"comparison": "eapo − grpo", "mde": {"8": 0.021}}]}
    return {
        "settings": {
            "steps": 200,
            "seeds": list(range(100, 108)),
            "final_eval": {"samples": 16, "problems": 200},
        },
        "prestated": {"primary": {"label": "AUC of held-out Avg@8", "tests": [test]}, "power": power},
    }


def test_the_headline_row_reads_the_pre_stated_verdict_per_model(tmp_path: Path) -> None:
    f = _findings()
    for verdict, estimate, expected in (
        ("eapo better", 0.05, "held"),
        ("grpo better", -0.05, "not held"),
        ("no claim", 0.005, "inconclusive"),
    ):
        (tmp_path / "compare_smollm2_headline.json").write_text(
            json.dumps(_headline_report(verdict, estimate))
        )
        _, (row,) = f.claims_per_model(f.headline_claim, tmp_path)
        _, tiny_verdict, smollm2_ours, smollm2_verdict = row[3:]
        assert tiny_verdict == "not run yet" and smollm2_verdict == expected
        assert (
            "AUC of held-out Avg@8" in smollm2_ours and "8 seeds detect at 80% power: 0.021" in smollm2_ours
        )


def test_the_headline_cell_says_what_the_pilot_fixed_before_the_headline_ran(tmp_path: Path) -> None:
    f = _findings()
    _, (row,) = f.claims_per_model(f.headline_claim, tmp_path)
    assert row[5].startswith("not run yet: needs") and "pilot" not in row[5]
    mde = {"comparison": "grpo", "mde": {"4": 0.05, "8": 0.031, "16": 0.02}}
    mde["mde_sd_upper"] = {"4": 0.2, "8": 0.12, "16": 0.08}
    pilot = {"horizon": {"horizon": 180}, "mde": {"rows": [mde]}}
    (tmp_path / "compare_smollm2_pilot.json").write_text(json.dumps(pilot))
    _, (row,) = f.claims_per_model(f.headline_claim, tmp_path)
    assert (
        "fixed the horizon at 180 steps" in row[5] and "8 seeds detect at 80% power: 0.031 (0.120" in row[5]
    )
    assert row[6] == "not run yet"


def test_analysis_claims_have_every_row_per_model_before_their_data_exist(tmp_path: Path) -> None:
    """Both models' columns hold the same claims; without data each cell names the command and file."""
    f = _findings()
    header, rows = f.claims_per_model(f.analysis_claims, tmp_path)
    assert len(rows) == 14 and header[-2].startswith("SmolLM2")
    for row in rows:
        assert row[4] == row[6] == "not run yet", row[0]
    fig6a = next(row for row in rows if row[0].startswith("Fig. 6a"))
    assert "smollm2_study.sh headline" in fig6a[5] and "compare_smollm2_headline.json" in fig6a[5]
    credit = next(row for row in rows if row[0].startswith("EAPO's rule") and "(grpo run)" in row[0])
    assert "analyses_end" in credit[5] and "credit_smollm2_end_grpo.json" in credit[5]


def _rule(low: float, high: float) -> dict[str, Any]:
    top = {"n_high": 100, "precision": (low + high) / 2, "precision_ci": [low, high], "recall": 0.3,
           "recall_ci": [0.2, 0.4], "base_rate": 0.25}  # fmt: skip
    detectable = {"n_high": 50, "precision": 0.2, "precision_ci": [0.1, 0.3], "base_rate": 0.125}
    return {"n": 400, "above_share": 0.3, "top_quarter": top, "detectable": detectable}


def test_the_rule_row_compares_the_precision_interval_with_a_random_pick() -> None:
    f = _findings()
    for (low, high), verdict in (
        ((0.3, 0.5), "held"),
        ((0.1, 0.2), "not held"),
        ((0.2, 0.3), "inconclusive"),
    ):
        row = f._rule_finds_credit("eapo", {"eapo_rule": _rule(low, high)}, ["missing", "not run yet"])
        assert row[-1] == verdict and "vs base rate 0.250" in row[3]
    assert f._rule_finds_credit("eapo", {"eapo_rule": {"n": 0}}, [])[-1] == "not tested"


def test_fig_6a_on_smollm2_reads_the_headline_entropy_curves_over_seeds(tmp_path: Path) -> None:
    """The first and last tenth of each arm's seed-mean entropy curve; GRPO falls below half, EAPO not."""
    f = _findings()
    x = list(range(1, 101))

    def arm(start: float, end: float) -> dict[str, Any]:
        mean = [start + (end - start) * (i - 1) / 99 for i in x]
        curve = {"x": x, "mean": mean, "low": [m - 0.01 for m in mean], "high": [m + 0.01 for m in mean]}
        return {"seeds": list(range(100, 108)), "entropy_curve": curve}

    report: dict[str, Any] = {"kind": "compare", "arms": {"grpo": arm(0.3, 0.05), "eapo": arm(0.3, 0.25)}}
    (tmp_path / "compare_smollm2_headline.json").write_text(json.dumps(report))
    row = next(r for r in f.analysis_claims(tmp_path, "smollm2") if r[0].startswith("Fig. 6a"))
    assert row[-1] == "held (8 seeds)" and "over seeds" in row[3]
    report["arms"]["eapo"] = arm(0.3, 0.05)
    (tmp_path / "compare_smollm2_headline.json").write_text(json.dumps(report))
    row = next(r for r in f.analysis_claims(tmp_path, "smollm2") if r[0].startswith("Fig. 6a"))
    assert row[-1] == "inconclusive (8 seeds)"


def test_the_second_task_row_reads_its_own_grid_by_the_headline_criterion(tmp_path: Path) -> None:
    f = _findings()
    (tiny,) = f.second_task_claim(tmp_path, "tiny")
    assert tiny[-1] == "–" and "no second-task grid" in tiny[3]
    (missing,) = f.second_task_claim(tmp_path, "smollm2")
    assert missing[-1] == "not run yet" and "complex_headline" in missing[3]
    (tmp_path / "compare_smollm2_complex_headline.json").write_text(
        json.dumps(_headline_report("grpo better", -0.05))
    )
    (row,) = f.second_task_claim(tmp_path, "smollm2")
    assert row[2] == f.CRITERIA["headline"] and row[-1] == "not held" and "-0.050" in row[3]


def test_entro_adv_saturation_is_read_by_the_pre_stated_rule(tmp_path: Path) -> None:
    f = _findings()
    assert "Not run yet" in "\n".join(f.entro_adv_section(tmp_path))

    def part(tokens: int, at_cap: float) -> dict[str, Any]:
        return {"tokens": tokens, "entropy_mean": 0.5, "at_cap": at_cap, "bonus_over_abs_advantage_mean": 0.2}

    quadrants = {"PHR": part(10, 0.6), "PLR": part(10, 0.05), "NHR": part(10, 0.5), "NLR": part(10, 0.0)}
    data = {"runs": ["a", "b"], "dumps": 10, "alpha": 0.4, "kappa": 2.0, "all": part(40, 0.3)}
    data["quadrants"] = quadrants
    (tmp_path / "entro_adv_saturation_smollm2_entro_adv.json").write_text(json.dumps(data))
    text = "\n".join(f.entro_adv_section(tmp_path))
    table = [line for line in text.splitlines() if line.startswith("| ")]
    readings = {row.split(" | ")[1]: row.split(" | ")[-1].rstrip(" |") for row in table[1:]}
    assert readings == {
        "all": "mixed",
        "PHR": "saturated: a rescaling of GRPO",
        "PLR": "an entropy signal",
        "NHR": "mixed",  # exactly half is not more than half
        "NLR": "an entropy signal",
    }


def _credit_summary(spearman: float) -> dict[str, Any]:
    deciles = {str(d): {"mean_cmi": 0.001 * d**3, "n": 30} for d in range(10)}  # top 2 deciles: 61%
    everything: dict[str, Any] = {
        "n": 300,
        "exceed_fraction": 0.0,
        "point_exceed_fraction": 0.0,
        "spearman": spearman,
    }
    everything |= {"spearman_ci": [spearman - 0.1, spearman + 0.1], "credit_to_entropy": 0.3}
    return {
        "all": everything,
        "below_log2": {"n": 290, "exceed_fraction": 0.0, "point_exceed_fraction": 0.0},
        "at_or_above_log2": {"n": 10},
        "by_decile": deciles,
        "eapo_rule": _rule(0.4, 0.6),
    }


def test_smollm2_credit_rows_show_the_rl_start_beside_the_end_and_its_figures_are_linked(
    tmp_path: Path,
) -> None:
    f = _findings()
    (tmp_path / "credit_smollm2_end_eapo.json").write_text(json.dumps(_credit_summary(0.5)))
    (tmp_path / "credit_smollm2_start.json").write_text(json.dumps(_credit_summary(0.2)))
    (tmp_path / "quadrants_smollm2_eapo_entropy_polarity.png").write_bytes(b"png")
    rows = f.analysis_claims(tmp_path, "smollm2")
    d1 = next(r for r in rows if r[0].startswith("App. D.1") and "(eapo)" in r[0])
    assert d1[3].startswith("Spearman 0.500") and "at the RL start" in d1[3] and "Spearman 0.200" in d1[3]
    assert d1[4] == "held"
    rule = next(r for r in rows if r[0].startswith("EAPO's rule") and "(eapo run)" in r[0])
    assert rule[4] == "held" and "credit_smollm2_start.json" in rule[3]
    grpo = next(r for r in rows if r[0].startswith("App. D.1") and "(grpo)" in r[0])
    assert grpo[4] == "not run yet" and "at the RL start" in grpo[3]  # the start is shared by both runs
    figures = "\n".join(f.analysis_figures(tmp_path))
    assert "[Fig. 4: token entropy of positive vs negative tokens]" in figures
    assert "(../benchmarks/results/quadrants_smollm2_eapo_entropy_polarity.png)" in figures


def test_each_smollm2_analysis_names_its_machine_and_its_runs_precision(tmp_path: Path) -> None:
    """A study whose machines differ says which measured each analysis, and in which precision its run
    trained: recorded by the analysis where it is, read off the machine (dtype auto) for older files, and
    the lost bf16 runs' analyses are flagged as such until `analyses_end` replaces them."""
    f = _findings()
    machine = {"cpu": "AMD EPYC", "usable_cpus": 2, "torch": "2.13.0+cpu", "cuda": None}
    fp32 = {"training_forward": "float32", "weights": "float32", "rollout": "float32", "autocast": False}
    (tmp_path / "gradients_smollm2_grpo.json").write_text(
        json.dumps({"machine": {**machine, "cpu_fast_bf16": True}, "run_precision": fp32})
    )
    lines = f.analysis_provenance(tmp_path)
    assert any(
        "gradients_smollm2_grpo.json" in line and "no GPU; its run trained in float32" in line
        for line in lines
    )
    assert not any("lost with their machine" in line for line in lines)  # fp32 on a bf16 machine: pinned
    (tmp_path / "quadrants_smollm2_eapo.json").write_text(
        json.dumps({"machine": {**machine, "cpu_fast_bf16": True}})
    )
    lines = f.analysis_provenance(tmp_path)
    assert any(
        "quadrants_smollm2_eapo.json" in line and "bf16 autocast (dtype auto" in line for line in lines
    )
    assert any("lost with their machine" in line for line in lines)
    assert f.analysis_provenance(tmp_path / "none") == []
