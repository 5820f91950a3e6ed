"""Meta-World MT10/MT50: the family, SAC's gradient features, the budgets, and the stages end to end."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from pgx.clustering import GROUPINGS
from pgx.envs import make_family
from pgx.envs.metaworld import EPISODE_STEPS, MT10_TASKS, MT50_TASKS, make_mt10_env, task_descriptions, task_names
from pgx.profiles import PROFILES
from pgx.report import agreement_beyond_chance, metaworld_kinds

FOUR = "mt10:tasks=reach-v3+push-v3+drawer-close-v3+window-open-v3"


def test_mt10_family_spaces_names_and_episode_length():
    family = make_family("mt10")
    assert family.n_tasks == 10 and family.obs_dim == 39 + 10 and family.num_actions == 4
    assert family.max_episode_steps == EPISODE_STEPS == 500 and family.target_params == ()
    assert task_names(family) == list(MT10_TASKS) and MT10_TASKS[0] == "reach-v3" and len(MT50_TASKS) == 50
    sub = make_family(FOUR)
    assert task_names(sub) == ["reach-v3", "push-v3", "drawer-close-v3", "window-open-v3"]
    assert task_descriptions(["drawer-open-v3", "pick-place-wall-v3"]) == ["drawer open", "pick place wall"]
    env = sub.source_envs(range(4), 1)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 39 + 4) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:, 39:], np.eye(4, dtype=np.float32))  # the one-hot, last
    _, reward, terminated, truncated, info = env.step(np.zeros((4, 4)))
    assert "success" in info and info["success"].shape == (4,) and not terminated.any() and not truncated.any()
    assert np.all((reward >= 0) & (reward <= 10))  # reward v2
    env.close()


def test_a_scripted_reach_succeeds_and_episodes_end_by_truncation_at_500():
    from metaworld.policies import SawyerReachV3Policy

    env, policy = make_mt10_env(np.array([0.0])), SawyerReachV3Policy()
    obs, _ = env.reset(seed=3)
    reached, steps, truncated = False, 0, False
    while not truncated:
        obs, _, terminated, truncated, info = env.step(policy.get_action(obs))
        reached |= bool(info["success"])
        steps += 1
        assert not terminated
    assert reached and steps == 500
    env.close()


def test_reset_seed_reproduces_the_goal_and_the_start():
    env = make_mt10_env(np.array([1.0]))
    first, _ = env.reset(seed=11)
    goal = env.unwrapped._last_rand_vec.copy()
    env.reset(seed=12)
    again, _ = env.reset(seed=11)
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(goal, env.unwrapped._last_rand_vec)
    others = set()
    for s in range(8):
        env.reset(seed=s)
        others.add(env.get_wrapper_attr("goal_index"))
    assert len(others) > 1  # seeds pick among the 50 goals
    env.close()


@pytest.mark.parametrize("spec, match", [
    ("mt10:tasks=reach+push-v3", "unknown MT10 task 'reach'"),
    ("mt10:tasks=reach-v3+reach-v3", "at least 2 distinct names"),
    ("mt10:tasks=reach-v3", "at least 2 distinct names"),
    ("mt50:tasks=reach-v3+nope-v3", "unknown MT50 task 'nope-v3'"),
])
def test_bad_task_names_are_refused(spec, match):
    with pytest.raises(ValueError, match=match):
        make_family(spec)


def test_a_task_index_out_of_range_is_refused():
    for bad in (10.0, -1.0, 2.5):
        with pytest.raises(ValueError, match="one task index in \\[0, 9\\]"):
            make_mt10_env(np.array([bad]))


def test_profiles_specialise_to_mt50_and_refuse_bad_budgets():
    from pgx.stages.metaworld import metaworld_profile

    for name, profile in PROFILES.items():
        mt10, mt50 = metaworld_profile("mt10", name), metaworld_profile("mt50", profile)
        assert mt10.trainer == mt50.trainer == "sac" and profile.for_family("cartpole").trainer == "ppo"
        assert metaworld_profile(FOUR, name) == mt10 and mt10.family == "mt10"
        assert mt50.subset_size > mt10.subset_size  # fifty tasks need larger subsets to cover every pair
        assert not mt10.per_task_baseline  # SAC's soft advantages have no per-task critic bias to remove
    with pytest.raises(ValueError, match="mt10 or mt50"):
        metaworld_profile("cartpole", "smoke")
    with pytest.raises(ValueError, match="trains mt10's θ\\* with 'ppo'"):
        metaworld_profile("mt10", replace(PROFILES["smoke"], family_budgets={}))
    with pytest.raises(ValueError, match="trainer must be one of"):
        replace(PROFILES["smoke"], trainer="a2c")
    base = PROFILES["smoke"].metaworld
    with pytest.raises(ValueError, match="unknown method 'MT-PPO'"):
        replace(base, methods=("MT-SAC", "MT-PPO"))
    with pytest.raises(ValueError, match="value_samples must be an int >= 1, got 0"):
        replace(base, value_samples=0)
    with pytest.raises(ValueError, match="kind must be one of"):
        replace(base, group_arch="transformer")
    with pytest.raises(ValueError, match="unknown fields \\['nope'\\]"):
        replace(PROFILES["smoke"], family_budgets={"mt50": {"nope": 1}})


def _tiny_agent(family, seed=0, hidden=16):
    from pgx.algos.sac import SACAgent, SACConfig
    from pgx.nets import ArchConfig

    arch = ArchConfig(hidden=hidden, layers=2)
    return SACAgent.build(family, SACConfig(actor_arch=arch, critic_arch=arch, batch_size=8, buffer_size=8), seed=seed)


def test_rollouts_skip_reset_steps_and_label_tasks():
    from pgx.algos.sac import to_env_action
    from pgx.sac_features import policy_rollout

    family = make_family("mt10:tasks=reach-v3+drawer-close-v3")
    agent = _tiny_agent(family)
    # 600 steps from one sub-env per task cross the truncation at 500. Every episode starts with the
    # hand at the task's initial position; the step after the truncation (the autoreset step, which
    # is no transition) would add the previous episode's last observation instead.
    samples = policy_rollout(agent.actor, family, 600, seed=1, envs_per_task=1,
                             action_of=lambda u: to_env_action(u, family.action_space))
    assert samples.obs.shape == (1200, 39 + 2) and samples.actions.shape == (1200, 4)
    np.testing.assert_array_equal(samples.task_ids.numpy(), np.repeat([0, 1], 600))
    for task in (0, 1):
        hand = samples.obs[task * 600:(task + 1) * 600, :3].numpy()
        np.testing.assert_allclose(hand[500], hand[0], atol=0.02)  # a fresh episode, not the old one's end
        assert np.abs(hand[499] - hand[0]).max() > 0.02
        np.testing.assert_array_equal(samples.obs[task * 600:(task + 1) * 600, 39:].numpy(),
                                      np.tile(np.eye(2)[task], (600, 1)))
    two = policy_rollout(agent.actor, family, 7, seed=1, envs_per_task=2,
                         action_of=lambda u: to_env_action(u, family.action_space))
    np.testing.assert_array_equal(two.task_ids.numpy(), np.repeat([0, 1], 7))


def test_soft_advantage_includes_the_entropy_term_and_favours_what_the_critic_favours():
    from pgx.algos.rollouts import Samples
    from pgx.sac_features import soft_advantages

    family = make_family("mt10:tasks=reach-v3+drawer-close-v3")
    agent = _tiny_agent(family)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(400, family.obs_dim, generator=g)
    obs[:, 39:] = torch.eye(2)[torch.arange(400) % 2]
    u = agent.actor.sample(obs, g).detach()
    samples = Samples(obs=obs, actions=u, advantages=torch.zeros(400), task_ids=torch.arange(400) % 2)
    adv = soft_advantages(agent, samples, value_samples=4, seed=5)
    generator = torch.Generator().manual_seed(5)
    expected = (agent.q_values(obs, u) - agent.alpha(agent.task_index(obs)) * agent.actor.log_prob(obs, u)
                - agent.soft_value(obs, 4, generator))
    torch.testing.assert_close(adv, expected.detach().float())
    # Over the policy's own actions the soft advantage averages to zero (Q − V alone would sit at −α·H).
    assert abs(float(adv.mean())) < 0.25 * float(adv.std())
    assert 0.2 < float((adv > 0).float().mean()) < 0.8
    # A critic that pays for the first action coordinate: actions with a larger one get larger Â.
    with torch.no_grad():
        for q in (agent.critic.q1, agent.critic.q2):
            for p in q.parameters():
                p.zero_()
    agent.critic.q1.forward = agent.critic.q2.forward = lambda x, task: 5.0 * x[:, 39 + 2:39 + 3]
    adv = soft_advantages(agent, samples, value_samples=16, seed=5)
    order = torch.tanh(u[:, 0])
    assert float(torch.corrcoef(torch.stack([adv, order]))[0, 1]) > 0.5
    with pytest.raises(ValueError, match="value_samples must be an integer >= 1, got 0"):
        soft_advantages(agent, samples, value_samples=0, seed=5)


def test_evaluation_counts_success_at_any_step_and_pairs_episodes_by_task():
    from pgx.algos.sac import evaluate
    from pgx.envs import gym_family

    family = gym_family("flash", _flash_env, [0.0, 1.0, 2.0], [], "task", max_episode_steps=10)
    agent = _tiny_agent(family)
    success, returns = evaluate(family, agent.actor, [0, 1, 2], episodes=2, seed=0)
    np.testing.assert_array_equal(success, [1.0, 1.0, 1.0])  # success reported at step 3 only
    # Episode e of task t is seeded by (t, e), not by its slot: task 2 alone meets the same episodes.
    _, alone = evaluate(family, agent.actor, [2], episodes=2, seed=0)
    np.testing.assert_allclose(alone, returns[2:])


def _flash_env(param):
    """A 10-step episode that reports success at step 3 only; its reward is its reset seed."""
    import gymnasium as gym
    from gymnasium import spaces

    class Flash(gym.Env):
        observation_space = spaces.Box(-1, 1, (2,), np.float32)
        action_space = spaces.Box(-1, 1, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            self.t, self.seed_value = 0, 0 if seed is None else seed % 97
            return np.zeros(2, np.float32), {}

        def step(self, action):
            self.t += 1
            return (np.zeros(2, np.float32), float(self.seed_value), False, self.t >= 10,
                    {"success": self.t == 3})

    return gym.wrappers.TimeLimit(Flash(), 10)


def test_kinds_and_agreement_beyond_chance():
    assert metaworld_kinds(["drawer-open-v3", "pick-place-wall-v3", "reach-v3"]) == ["drawer", "pick", "reach"]
    same = agreement_beyond_chance([0, 0, 1, 1, 2, 2, 3, 3], [5, 5, 6, 6, 7, 7, 8, 8], draws=500)
    assert same["nmi"] == pytest.approx(1.0) and same["share of shuffles at least as high"] < 0.05
    assert same["chance nmi"] < 0.9
    with pytest.raises(ValueError, match="equal length"):
        agreement_beyond_chance([0, 1], [0, 1, 2])


def test_grouping_and_table_run_end_to_end_on_four_tasks(isolated_cache):
    from pgx.stages import metaworld as mw

    budgets = replace(PROFILES["smoke"].for_family("mt10"), num_subsets=6, subset_size=2, num_groups=2)
    g = mw.grouping(FOUR, budgets, 0)
    assert set(g.groups) == set(GROUPINGS)
    for labels in g.groups.values():
        assert sorted(set(labels.tolist())) == [0, 1] and len(labels) == 4  # a partition into k = 2 groups
    # eq. 5 of the stage's own scores, z-normalised (zero diagonal); the groups are its SDP's
    from pgx.affinity import affinity_matrix
    from pgx.clustering import RANDOM_SEED_OFFSET, random_grouping, sdp_cluster

    np.testing.assert_array_equal(g.affinity, affinity_matrix(g.subsets, g.scores, 4))
    np.testing.assert_allclose(np.diag(g.affinity), 0.0, atol=1e-12)
    np.testing.assert_array_equal(g.groups["PolicyGradEx"], sdp_cluster(g.affinity, k=2, seed=0))
    np.testing.assert_array_equal(g.groups["random"], random_grouping(4, 2, RANDOM_SEED_OFFSET))
    assert g.features.features.shape == (4 * budgets.steps_per_task, budgets.projection_dim)
    assert np.isfinite(g.features.advantages).all() and g.parameters > 0
    table = mw.multitask_table(FOUR, budgets, 0)
    assert list(table) == ["MT-SAC", "Soft Modularization"] + [f"{m} groups" for m in GROUPINGS]
    for method, r in table.items():
        # one evaluation episode per task (smoke): every task's success rate is 0 or 1, none left unset
        assert r["success"].shape == (4,) and np.isin(r["success"], [0.0, 1.0]).all()
        assert r["env_steps"] == table["MT-SAC"]["env_steps"]  # the same budget for every method
    assert table["MT-SAC"]["runs"][0] is not None and table["MT-SAC"]["success"].tolist() == g.meta.success.tolist()
    with pytest.raises(ValueError, match="run mt10 or mt50"):
        mw.grouping("cartpole", budgets, 0)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        mw.grouping(FOUR, budgets, -1)


@pytest.mark.parametrize("kind", ["mlp", "softmod", "paco", "care"])
def test_projected_features_of_every_sac_actor_equal_the_per_sample_loop(kind):
    # The fast path forms per-sample gradients of nn.Linear layers from activations and errors;
    # PaCo's composed weights (and routing/attention parameters) go through torch.func per chunk.
    from pgx.algos.sac import SACAgent, SACConfig
    from pgx.gradients import GaussianProjector, per_sample_grads_loop, projected_grads
    from pgx.nets import ArchConfig

    family = make_family(FOUR)
    arch = ArchConfig(kind=kind, hidden=8, layers=3, modules=2)
    agent = SACAgent.build(family, SACConfig(actor_arch=arch, critic_arch=arch, batch_size=8, buffer_size=8), seed=1)
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(12, family.obs_dim, generator=g)
    obs[:, 39:] = torch.eye(4)[torch.arange(12) % 4]
    u = agent.actor.sample(obs, g).detach()
    projector = GaussianProjector([tuple(p.shape) for p in agent.actor.parameters()], 6, seed=3, block_rows=50)
    fast = projected_grads(agent.actor, obs, u, projector, chunk_size=5)
    torch.testing.assert_close(fast, projector.project(per_sample_grads_loop(agent.actor, obs, u)), rtol=1e-4, atol=1e-5)
