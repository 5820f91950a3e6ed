import torch

from pgx.algos.rollouts import gae


def _t(rows, dtype=torch.float32):
    return torch.tensor(rows, dtype=dtype).reshape(-1, 1)


def test_gae_by_hand_with_termination_and_autoreset_step():
    # One sub-env, 4 steps: r=1 each; step 1 terminates, step 2 is the autoreset step (invalid).
    rewards = _t([1.0, 1.0, 0.0, 1.0])
    values = _t([0.5, 0.4, 0.9, 0.3])
    terminated = _t([0, 1, 0, 0], torch.bool)
    truncated = _t([0, 0, 0, 0], torch.bool)
    valid = _t([1, 1, 0, 1], torch.bool)
    next_value = torch.tensor([0.2])
    g, lam = 0.9, 0.8
    adv = gae(rewards, values, terminated, truncated, valid, next_value, g, lam).squeeze(1)
    a3 = 1.0 + g * 0.2 - 0.3
    a1 = 1.0 - 0.4  # terminated: no bootstrap
    a0 = (1.0 + g * 0.4 - 0.5) + g * lam * a1
    torch.testing.assert_close(adv, torch.tensor([a0, a1, 0.0, a3]))


def test_gae_truncation_bootstraps_from_final_observation_value():
    # Step 0 is truncated; values[1] is V(final obs) in NEXT_STEP mode and must be used.
    rewards = _t([1.0, 0.0])
    values = _t([0.5, 7.0])
    terminated = _t([0, 0], torch.bool)
    truncated = _t([1, 0], torch.bool)
    valid = _t([1, 0], torch.bool)
    adv = gae(rewards, values, terminated, truncated, valid, torch.tensor([0.0]), 0.9, 0.95).squeeze(1)
    torch.testing.assert_close(adv, torch.tensor([1.0 + 0.9 * 7.0 - 0.5, 0.0]))


def test_center_per_task_zeroes_each_tasks_mean_and_keeps_the_rest():
    from pgx.algos.rollouts import Samples, center_per_task

    gen = torch.Generator().manual_seed(0)
    task_ids = torch.tensor([0, 1, 0, 2, 1, 0, 2, 2])
    advantages = torch.randn(8, generator=gen) + task_ids * 10.0  # a per-task offset, as a biased critic gives
    samples = Samples(obs=torch.randn(8, 3, generator=gen), actions=torch.arange(8), advantages=advantages,
                      task_ids=task_ids)
    centred = center_per_task(samples)
    for task in (0, 1, 2):
        mask = task_ids == task
        assert abs(float(centred.advantages[mask].mean())) < 1e-5
        # within a task only a constant moves: differences between samples are untouched
        assert torch.allclose(centred.advantages[mask] - centred.advantages[mask][0],
                              advantages[mask] - advantages[mask][0], atol=1e-5)
    assert centred.obs is samples.obs and centred.task_ids is samples.task_ids
    assert torch.equal(samples.advantages, advantages)  # the input is not modified
