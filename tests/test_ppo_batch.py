"""train_many (R PPO runs in one process) against R sequential ``train`` calls.

``exact=True`` (the default) is bit for bit ``train``: returns logs and parameters compared with
``torch.equal``. ``exact=False`` (padded, masked minibatches) measured here (torch 2.13, CPU, one
thread): CartPole's returns logs equal and parameters within 1.5e-7 after 8 iterations;
navigation's parameters within 1.5e-7 and returns within 1e-5 relative (Gaussian actions carry the
gradients' float noise into the env). Its tolerances below leave a margin of ~10× over that.
"""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pgx.algos.ppo import PPOConfig, train
from pgx.algos.ppo_batch import StackedAdam, train_many
from pgx.envs import make_family
from pgx.nets.policies import ActorCritic

CFG = PPOConfig(total_timesteps=1024, envs_per_task=2, num_steps=32, learning_rate=1e-3)
RUNS = [((0, 1), 0), ((2, 3), 1), ((1, 4), 2), ((0, 1), 3)]
PARAM_ATOL = 2e-6


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sequential(family, cfg, runs, init_state=None):
    return [train(family, s, cfg, seed, init_state=init_state, progress=False) for s, seed in runs]


def _compare(family, cfg, runs, returns_rtol, init_state=None, exact=True, sequential=None):
    """``returns_rtol`` 0 with ``exact``: everything bit for bit."""
    sequential = sequential or _sequential(family, cfg, runs, init_state)
    batched = train_many(family, runs, cfg, init_state=init_state, exact=exact)
    assert len(batched) == len(runs)
    for (subset, _), a, b in zip(runs, sequential, batched):
        assert b.task_ids == tuple(subset)
        np.testing.assert_array_equal(a.steps, b.steps)
        assert a.task_returns.shape == b.task_returns.shape == (cfg.num_iterations(len(subset)), len(subset))
        if returns_rtol == 0:
            np.testing.assert_array_equal(a.task_returns, b.task_returns)
        else:
            np.testing.assert_allclose(a.task_returns, b.task_returns, rtol=returns_rtol, atol=1e-4)
        for mine, theirs in ((b.actor_state, a.actor_state), (b.critic_state, a.critic_state)):
            assert mine.keys() == theirs.keys()
            for k in mine:
                if exact:
                    assert torch.equal(mine[k], theirs[k]), (subset, k, (mine[k] - theirs[k]).abs().max())
                else:
                    torch.testing.assert_close(mine[k], theirs[k], atol=PARAM_ATOL, rtol=0)
    return sequential, batched


def test_cartpole_discrete_equals_sequential():
    family = make_family("cartpole")
    sequential, _ = _compare(family, CFG, RUNS[:3], returns_rtol=0)
    _compare(family, CFG, RUNS[:3], returns_rtol=1e-5, exact=False, sequential=sequential)


def test_navigation_box_equals_sequential():
    family = make_family("navigation")
    cfg = replace(CFG, anneal_lr=False, clip_vloss=True)
    sequential, _ = _compare(family, cfg, RUNS[1:], returns_rtol=0)
    _compare(family, cfg, RUNS[1:], returns_rtol=1e-5, exact=False, sequential=sequential)


def test_from_given_weights_equals_sequential():
    family = make_family("cartpole")
    torch.manual_seed(7)
    agent = ActorCritic(family.obs_dim, family.action_space, CFG.policy)
    init = (agent.actor.state_dict(), agent.critic.state_dict())
    _compare(family, replace(CFG, total_timesteps=512), RUNS[:2], returns_rtol=0, init_state=init)


def test_learning_rate_zero_keeps_weights():
    family = make_family("navigation")
    torch.manual_seed(3)
    agent = ActorCritic(family.obs_dim, family.action_space, CFG.policy)
    init = ({k: v.clone() for k, v in agent.actor.state_dict().items()},
            {k: v.clone() for k, v in agent.critic.state_dict().items()})
    cfg = replace(CFG, learning_rate=0.0, total_timesteps=256)
    for exact in (True, False):
        for result in train_many(family, RUNS[:3], cfg, init_state=init, exact=exact):
            for k, v in init[0].items():
                assert torch.equal(result.actor_state[k], v), k
            for k, v in init[1].items():
                assert torch.equal(result.critic_state[k], v), k


def test_mismatched_subset_lengths_refused():
    with pytest.raises(ValueError, match=r"one length.*lengths \[1, 2\]"):
        train_many(make_family("cartpole"), [((0,), 0), ((1, 2), 0)], CFG)
    with pytest.raises(ValueError, match="runs is empty"):
        train_many(make_family("cartpole"), [], CFG)


def test_on_iteration_sees_each_run():
    family = make_family("cartpole")
    cfg = replace(CFG, total_timesteps=384)  # 3 iterations
    seen: dict[tuple[int, int], dict] = {}

    def snap(iteration, r, agent):
        seen[iteration, r] = {k: v.detach().clone() for k, v in agent.actor.state_dict().items()}

    results = train_many(family, RUNS[:2], cfg, on_iteration=snap)
    assert sorted(seen) == [(i, r) for i in range(3) for r in range(2)]
    for r, result in enumerate(results):
        for k, v in result.actor_state.items():
            assert torch.equal(seen[2, r][k], v)
        assert not torch.equal(seen[0, r]["net.0.weight"], seen[2, r]["net.0.weight"])


def test_stacked_adam_is_torch_adam_bit_for_bit():
    """Same gradients in, same parameters out, with runs skipping steps (a missing minibatch)."""
    gen = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (5,), (1, 5)]
    runs = 3
    start = [torch.randn((runs, *s), generator=gen) for s in shapes]
    stacked = [p.clone() for p in start]
    adam = StackedAdam(stacked, eps=1e-5)
    singles = [[p[r].clone().requires_grad_(True) for p in start] for r in range(runs)]
    opts = [torch.optim.Adam(ps, lr=1e-3, eps=1e-5, foreach=True) for ps in singles]
    for step in range(12):
        grads = [torch.randn((runs, *s), generator=gen) for s in shapes]
        active = [True, step % 3 != 1, step % 2 == 0]
        lr = 1e-3 * (1 - step / 12)
        adam.step(grads, lr, active)
        for r in range(runs):
            if not active[r]:
                continue
            opts[r].param_groups[0]["lr"] = lr
            for p, g in zip(singles[r], grads):
                p.grad = g[r].clone()
            opts[r].step()
    for r in range(runs):
        for p, q in zip(stacked, singles[r]):
            assert torch.equal(p[r], q.detach())
    assert adam.steps == [12, 8, 6]


def test_runs_with_different_minibatch_counts():
    """Tiny batches (8 steps, 3 minibatches): a run whose batch lost a step to an autoreset has 3
    minibatches of 2, a full one 4 — runs skip Adam steps at the positions they lack."""
    family = make_family("cartpole")
    cfg = replace(CFG, envs_per_task=1, num_steps=4, num_minibatches=3, update_epochs=2, total_timesteps=8 * 30)
    seen = set()
    real = torch.randperm

    def spy(n, *args, **kwargs):
        seen.add(n // (n // cfg.num_minibatches))
        return real(n, *args, **kwargs)

    torch.randperm = spy
    try:
        sequential, _ = _compare(family, cfg, RUNS[:3], returns_rtol=0)
    finally:
        torch.randperm = real
    assert {3, 4} <= seen  # both minibatch counts occurred
    _compare(family, cfg, RUNS[:3], returns_rtol=1e-5, exact=False, sequential=sequential)


# --- merged envs (pgx.envs.runs): every run's sub-envs in one vector env, bit for bit ----------

@pytest.mark.parametrize("spec", ["cartpole", "navigation:start_noise=0.05"])
def test_merged_envs_step_like_separate_envs(spec):
    """Random actions for 600 steps (CartPole's episodes end often; navigation's truncate at 100 and
    redraw noisy starts): observations, rewards and flags of the merged env equal the runs' own."""
    from pgx.envs.runs import MergedRuns, SeparateRuns, run_envs

    family = make_family(spec)
    subsets, seeds = [(0, 1), (2, 3), (1, 4)], [0, 1, 2]
    merged, separate = run_envs(family, subsets, 2), SeparateRuns(family, subsets, 2)
    assert isinstance(merged, MergedRuns)
    rng = np.random.default_rng(0)
    try:
        np.testing.assert_array_equal(merged.reset(seeds), separate.reset(seeds))
        for _ in range(600):
            actions = (rng.integers(0, 2, (3, 4)) if family.discrete
                       else rng.uniform(-1, 1, (3, 4, 2)).astype(np.float32))
            a, b = merged.step(actions), separate.step(actions)
            for x, y in zip(a[:4], b[:4]):
                np.testing.assert_array_equal(x, y)
    finally:
        merged.close()
        separate.close()


def test_navigation_noisy_starts_batched_equals_sequential():
    family = make_family("navigation:start_noise=0.05")
    _compare(family, replace(CFG, num_steps=64), RUNS[1:], returns_rtol=0)


def test_unmergeable_family_keeps_separate_envs():
    from pgx.envs.runs import SeparateRuns, run_envs

    family = make_family("highway")
    assert family.merge_axis is None
    envs = run_envs(family, [(0, 1)], 1)
    try:
        assert isinstance(envs, SeparateRuns)
    finally:
        envs.close()


def test_block_rng_refuses_what_it_cannot_split():
    from pgx.envs.runs import BlockRNG

    rng = BlockRNG([np.random.default_rng(0), np.random.default_rng(1)], block=2, axis=1)
    with pytest.raises(TypeError, match="'normal'"):
        rng.normal(size=3)
    with pytest.raises(ValueError, match="merge_axis"):
        rng.uniform(0, 1, size=(4, 3))  # 4 sub-envs pending, 3 drawn along axis 1
    rng.pending = np.array([True, False, True, True])
    draw = rng.uniform(-1, 1, size=(4, 3))
    np.testing.assert_array_equal(draw[:, :1], np.random.default_rng(0).uniform(-1, 1, size=(4, 1)))
    np.testing.assert_array_equal(draw[:, 1:], np.random.default_rng(1).uniform(-1, 1, size=(4, 2)))


@pytest.mark.parametrize("spec", ["cartpole", "navigation", "highway"])
def test_padded_run_does_not_depend_on_its_batch(spec):
    """``exact=False``: a run's result is the same bit for bit alone, first or last in a batch, so
    the fine-tune store may keep it whichever batch computed it (a resumed call batches differently)."""
    family = make_family(spec)
    runs = RUNS[:3]
    alone = train_many(family, runs[1:2], CFG, exact=False)[0]
    for batch, where in ((runs, 1), (runs[1:][::-1], 1), (runs[1:2] + runs[:1], 0)):
        other = train_many(family, batch, CFG, exact=False)[where]
        np.testing.assert_array_equal(alone.task_returns, other.task_returns)
        for mine, theirs in ((alone.actor_state, other.actor_state), (alone.critic_state, other.critic_state)):
            for k in mine:
                assert torch.equal(mine[k], theirs[k]), (batch, k)


def test_padded_long_runs_equal_exact_statistically():
    """Over the default profile's whole CartPole fine-tuning (16 iterations of 2,560 steps), padded
    runs part from ``train``'s where a Categorical draw falls on a float-noise boundary (measured:
    parameters up to ~1e-2 apart at the end, 2 of 8 returns logs still equal). Paired over 16 seeds,
    the learning curves' mean return does not differ (paired t-test at 1%; measured p 0.75, padded
    minus exact -0.08 ± 0.90); the control shows the test can fail: a 30% lower learning rate
    (curves 10.6 lower) is told apart (measured p 2e-4)."""
    from scipy.stats import ttest_rel

    from pgx.profiles import get_profile

    family = make_family("cartpole")
    cfg = get_profile("default").for_family("cartpole").finetune_ppo
    rng = np.random.default_rng(0)
    runs = [(tuple(sorted(rng.choice(family.n_tasks, 5, replace=False).tolist())), seed) for seed in range(16)]
    torch.manual_seed(0)
    agent = ActorCritic(family.obs_dim, family.action_space, cfg.policy)
    init = (agent.actor.state_dict(), agent.critic.state_dict())

    def curve_means(config, exact):
        trained = train_many(family, runs, config, init_state=init, exact=exact)
        return np.array([np.nanmean(r.task_returns) for r in trained])

    exact, padded = curve_means(cfg, True), curve_means(cfg, False)
    assert ttest_rel(exact, padded).pvalue > 0.01, (exact, padded)
    slower = curve_means(replace(cfg, learning_rate=0.7 * cfg.learning_rate), False)
    assert ttest_rel(exact, slower).pvalue < 0.01, (exact, slower)


@pytest.mark.parametrize("spec", ["cartpole", "navigation:start_noise=0.05", "lunarlander"])
def test_training_starts_are_keyed_by_seed_and_task(spec):
    """A training run's sub-env j of task t starts from seed (seed, t, j): the same task starts the
    same way in every subset (common random numbers across the truth's subsets), and seed s + 1 is
    not seed s shifted by one sub-env (Gymnasium's seed + i rule: issue 22)."""
    from pgx.envs.runs import start_training_envs

    family = make_family(spec)

    def starts(subset, seed):
        env = family.source_envs(subset, 2)
        try:
            return start_training_envs(family, env, seed, np.repeat(subset, 2))
        finally:
            env.close()

    dims = family.base_obs_dim
    a, b = starts((0, 3), 7), starts((3, 5), 7)
    np.testing.assert_array_equal(a[2:4, :dims], b[0:2, :dims])  # task 3's two sub-envs, wherever they sit
    assert not np.array_equal(a[2, :dims], a[3, :dims])  # its two sub-envs differ from each other
    shifted = starts((0, 3), 8)
    assert not np.array_equal(shifted[0, :dims], a[1, :dims])
