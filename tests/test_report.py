"""What chapters share: which families a build covers, their budgets, and the transfer gap."""

import numpy as np
import pytest

from pgx.profiles import get_profile
from pgx.report import book_families, book_seed, metaworld_families, budgets_table, families_table, hidden_and_shown, transfer_gaps


def test_book_families_default_and_restricted(monkeypatch):
    monkeypatch.delenv("PGX_FAMILIES", raising=False)
    assert book_families() == ("cartpole", "lunarlander", "highway", "navigation")
    monkeypatch.setenv("PGX_FAMILIES", " cartpole , navigation:goals=partial ")
    assert book_families() == ("cartpole", "navigation:goals=partial")
    monkeypatch.setenv("PGX_FAMILIES", "cartpole,hopper")
    with pytest.raises(ValueError, match="PGX_FAMILIES: unknown family 'hopper'"):
        book_families()


def test_pgx_families_governs_the_metaworld_chapter(monkeypatch):
    monkeypatch.delenv("PGX_FAMILIES", raising=False)
    assert metaworld_families() == ("mt10", "mt50")
    monkeypatch.setenv("PGX_FAMILIES", "cartpole")
    assert metaworld_families() == () and book_families() == ("cartpole",)
    monkeypatch.setenv("PGX_FAMILIES", "mt10,navigation")
    assert metaworld_families() == ("mt10",) and book_families() == ("navigation",)
    monkeypatch.setenv("PGX_FAMILIES", "mt50")
    with pytest.raises(ValueError, match="names only Meta-World families"):
        book_families()


def test_book_seed(monkeypatch):
    monkeypatch.setenv("PGX_SEED", "3")
    assert book_seed() == 3
    monkeypatch.setenv("PGX_SEED", "-1")
    with pytest.raises(ValueError, match="PGX_SEED must be a non-negative integer, got '-1'"):
        book_seed()


def test_budgets_differ_per_family():
    table = budgets_table(get_profile("default"), ["cartpole", "lunarlander", "highway"])
    steps = table.loc["meta-training steps"]
    assert steps["cartpole"] == 1_000_000 and steps["lunarlander"] == 2_000_000 and steps["highway"] == 204_800
    assert "family" not in table.index


def test_profile_for_family_refuses_another_family():
    profile = get_profile("smoke").for_family("highway")
    assert profile.for_family("highway") is profile
    with pytest.raises(ValueError, match="specialised for 'highway', cannot run family 'cartpole'"):
        profile.for_family("cartpole")


def test_families_table_says_whether_the_task_is_shown():
    table = families_table(["cartpole", "navigation"])
    assert table.loc["cartpole", "policy sees the task"] and not table.loc["navigation", "policy sees the task"]
    assert table.loc["navigation", "actions"] == "2-D continuous"


def test_transfer_gaps_are_scale_free_and_sign_safe():
    matrix = np.array([[10.0, -5.0], [0.0, 5.0]])
    gaps = transfer_gaps(matrix)
    # Task 1 under task 0's policy: (5 − (−5)) / (10 − (−5)).
    assert gaps[0, 1] == pytest.approx(10 / 15) and gaps[1, 0] == pytest.approx(10 / 15)
    np.testing.assert_allclose(np.diag(gaps), 0)
    np.testing.assert_allclose(transfer_gaps(3 * matrix - 7), gaps)
    with pytest.raises(ValueError, match="must be square"):
        transfer_gaps(np.ones((2, 3)))


def test_hidden_and_shown_variants():
    assert hidden_and_shown("cartpole") == {"task shown": "cartpole", "task hidden": "cartpole:observe_task=false"}
    assert hidden_and_shown("navigation:goals=uniform") == {
        "task shown": "navigation:goals=uniform,observe_task=true", "task hidden": "navigation:goals=uniform"}


def test_replicates_needed_inverts_spearman_brown():
    from pgx.truth.reliability import spearman_brown
    from pgx.report import replicates_needed

    # one replicate at 0.35: the truth of R replicates reaches 0.9 exactly at the projected R
    needed = replicates_needed(0.35, 0.9)
    assert spearman_brown(0.35, needed) == pytest.approx(0.9)
    # measured on halves of 2 replicates: twice as many replicates as halves
    assert replicates_needed(0.5, 0.8, measured_with=2) == pytest.approx(2 * replicates_needed(0.5, 0.8))
    assert replicates_needed(0.0, 0.9) == np.inf and replicates_needed(-0.2, 0.9) == np.inf
    assert np.isnan(replicates_needed(float("nan"), 0.9))
    assert replicates_needed(1.0, 0.9) == 0.0


@pytest.mark.parametrize("kwargs", [dict(target=1.0), dict(target=0.0), dict(target=0.9, measured_with=0),
                                    dict(target=0.9, measured_with=1.5)])
def test_replicates_needed_refuses_bad_arguments(kwargs):
    from pgx.report import replicates_needed

    name = "measured_with" if "measured_with" in kwargs else "target"
    with pytest.raises(ValueError, match=name):
        replicates_needed(0.5, **kwargs)


def test_table3_improvements_and_verdicts_let_the_seeds_decide():
    import pandas as pd

    from pgx.report import improvement_verdicts, relative_improvements

    rows = pd.DataFrame(
        [{"family": f, "seed": s, "method": m, "after": v}
         for f, table in {"lunar": {"ours": (-50, -52, -48), "random": (-100, -98, -102), "ppo": (-49, -51, -50)},
                          "cart": {"ours": (150, 160, 140), "random": (100, 101, 99), "ppo": (0, 0, 0)}}.items()
         for m, values in table.items() for s, v in enumerate(values)]
    ).set_index(["family", "seed", "method"])
    improvements = relative_improvements(rows, "ours")["improvement"]
    # Negative returns: −50 against −100 is a 50% improvement, not −50%.
    assert improvements.loc[("lunar", 0, "random")] == pytest.approx(0.5)
    assert improvements.loc[("cart", 0, "random")] == pytest.approx(0.5)
    assert np.isnan(improvements.loc[("cart", 0, "ppo")])  # a baseline of exactly 0: NaN, not inf
    verdicts = improvement_verdicts(rows, "ours")["verdict"]
    assert verdicts[("lunar", "random")] == "better"
    assert verdicts[("lunar", "ppo")] == "no difference beyond the seeds' spread"  # 0.5 apart, spread 1–2
    assert verdicts[("cart", "random")] == "better"
    assert list(verdicts.index.get_level_values("family").unique()) == ["cart", "lunar"]  # every family, once
