"""Actor-critic networks for Discrete and Box action spaces.

The paper uses a four-layer MLP policy. The actor and critic are separate MLPs (as in CleanRL's
``ppo.py``) so that per-sample gradients of ``log π(a|s)`` involve the actor's parameters only:
θ* in the paper is the actor. Both actors share one interface — ``log_prob(obs, actions)``,
``sample(obs, generator)``, ``mode(obs)``, ``entropy(obs)``, and the fused ``sample_and_log_prob``
(a rollout step) and ``log_prob_and_entropy`` (a PPO minibatch) — so features, surrogate, Taylor,
Hessian and generalization code never ask which kind of action a family has.

Every layer with weights is an ``nn.Linear``. ``pgx.gradients`` relies on this: for a linear layer
the per-sample gradient is an outer product of the layer's input and its back-propagated error,
which it projects without ever materialising the per-sample gradient matrix. The Gaussian actor's
state-independent ``log_std`` is the one parameter outside a linear layer; it is small and
``pgx.gradients`` handles it with ``torch.func``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from gymnasium import spaces
from torch import nn

from pgx.checks import KeyedByChanges, check_int, check_number

__all__ = ["PolicyConfig", "layer_init", "mlp", "Actor", "CategoricalActor", "GaussianActor", "make_actor",
           "ActorCritic", "flat_params", "categorical_sample_and_log_prob", "categorical_log_prob_and_entropy",
           "gaussian_sample_and_log_prob", "gaussian_log_prob", "gaussian_entropy"]


@dataclass(frozen=True)
class PolicyConfig(KeyedByChanges):
    """Shape of the actor-critic MLPs."""

    hidden: int = 64
    """Width of every hidden layer."""
    layers: int = 4
    """Number of linear layers in each MLP (the paper's policy is a four-layer MLP)."""
    init_log_std: float = 0.0
    """Initial log standard deviation of a Gaussian actor (Box actions); unused for Discrete."""

    def __post_init__(self) -> None:
        check_int("PolicyConfig", "hidden", self.hidden)
        check_int("PolicyConfig", "layers", self.layers)
        check_number("PolicyConfig", "init_log_std", self.init_log_std)


def layer_init(layer: nn.Linear, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Linear:
    """Orthogonal weights, constant bias: the PPO initialisation that keeps early updates stable."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


def mlp(in_dim: int, out_dim: int, cfg: PolicyConfig, out_std: float) -> nn.Sequential:
    """``cfg.layers`` linear layers with tanh between them; the last layer's init scale is ``out_std``."""
    if cfg.layers < 1:
        raise ValueError(f"layers must be >= 1, got {cfg.layers}")
    dims = [in_dim] + [cfg.hidden] * (cfg.layers - 1) + [out_dim]
    modules: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        last = i == len(dims) - 2
        modules.append(layer_init(nn.Linear(a, b), std=out_std if last else math.sqrt(2)))
        if not last:
            modules.append(nn.Tanh())
    return nn.Sequential(*modules)


def categorical_sample_and_log_prob(logits: torch.Tensor,
                                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions drawn from ``softmax(logits)`` (rows of a 2-D ``logits``) and their log-probabilities.
    The one definition the actor and the batched trainer (``pgx.algos.ppo_batch``) share: the same
    calls, so the same bits."""
    action = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    return action, torch.log_softmax(logits, dim=-1).gather(-1, action.unsqueeze(-1)).squeeze(-1)


def categorical_log_prob_and_entropy(logits: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log π(a|s)`` of ``actions`` and the entropy, from the logits (any leading shape)."""
    log_p = torch.log_softmax(logits, dim=-1)
    return log_p.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), -(log_p.exp() * log_p).sum(-1)


def gaussian_sample_and_log_prob(mean: torch.Tensor, log_std: torch.Tensor,
                                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions ``mean + σ·noise`` (noise from ``generator``) and their log-probabilities."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    action = mean + noise * log_std.exp()
    return action, gaussian_log_prob(mean, log_std, action)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``log N(actions; mean, σ²)`` summed over the action dimensions (the last axis)."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z**2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)


def gaussian_entropy(log_std: torch.Tensor) -> torch.Tensor:
    """The entropy of a diagonal Gaussian with ``log_std`` (summed over the last axis); it does not
    depend on the state."""
    return (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)


class CategoricalActor(nn.Module):
    """Categorical policy π(a|s) over ``num_actions`` discrete actions; ``forward`` gives logits."""

    discrete = True

    def __init__(self, obs_dim: int, num_actions: int, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.net = mlp(obs_dim, num_actions, cfg, out_std=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, ``(batch, num_actions)``."""
        return self.net(obs)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log π(a|s)`` for each row: ``obs (N, obs_dim)``, ``actions (N,)`` → ``(N,)``."""
        return categorical_log_prob_and_entropy(self.net(obs), actions)[0]

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        log_p = torch.log_softmax(self.net(obs), dim=-1)
        return -(log_p.exp() * log_p).sum(-1)

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log_prob`` and ``entropy`` from one pass of the network: what a PPO minibatch needs.
        The values are bit-identical to calling both; their gradient flows back through one graph
        instead of two, so it differs from the two calls' in floating-point order only."""
        return categorical_log_prob_and_entropy(self.net(obs), actions)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(N,)`` actions drawn from ``generator`` (not the global RNG, so runs reproduce)."""
        return torch.multinomial(torch.softmax(self.net(obs), -1), 1, generator=generator).squeeze(-1)

    def sample_and_log_prob(self, obs: torch.Tensor,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``sample`` and ``log_prob`` of the sampled actions from one pass of the network: what a
        rollout needs at every step, for half the work. Bit-identical to calling both."""
        return categorical_sample_and_log_prob(self.net(obs), generator)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action (greedy evaluation)."""
        return self.net(obs).argmax(-1)


class GaussianActor(nn.Module):
    """Diagonal Gaussian policy with a state-independent log-std (CleanRL's continuous PPO).

    Actions are sampled unbounded and stored as sampled, so ``log_prob`` of a stored action is
    exact; the family clips them to the action bounds on the way into the env.
    """

    discrete = False

    def __init__(self, obs_dim: int, action_dim: int, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.net = mlp(obs_dim, action_dim, cfg, out_std=0.01)
        self.log_std = nn.Parameter(torch.full((action_dim,), float(cfg.init_log_std)))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action, ``(batch, action_dim)``."""
        return self.net(obs)

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log π(a|s)`` summed over action dimensions: ``obs (N, obs_dim)``, ``actions (N, A)`` → ``(N,)``."""
        return gaussian_log_prob(self.net(obs), self.log_std, actions)

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        return gaussian_entropy(self.log_std).expand(obs.shape[0])

    def log_prob_and_entropy(self, obs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``log_prob`` and ``entropy`` (see ``CategoricalActor.log_prob_and_entropy``); the
        entropy needs no network pass here, so this is the two calls, bit for bit."""
        return self.log_prob(obs, actions), self.entropy(obs)

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.net(obs)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + noise * self.log_std.exp()

    def sample_and_log_prob(self, obs: torch.Tensor,
                            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``sample`` and ``log_prob`` of the sampled actions from one pass of the network (see
        ``CategoricalActor.sample_and_log_prob``); bit-identical to calling both."""
        return gaussian_sample_and_log_prob(self.net(obs), self.log_std, generator)

    def mode(self, obs: torch.Tensor) -> torch.Tensor:
        """The mean action (greedy evaluation)."""
        return self.net(obs)


Actor = CategoricalActor | GaussianActor


def make_actor(obs_dim: int, action_space: spaces.Space | int, cfg: PolicyConfig = PolicyConfig()) -> Actor:
    """The actor for ``action_space``: Categorical for ``Discrete`` (or an int count), Gaussian for 1-D ``Box``."""
    if isinstance(action_space, int):
        action_space = spaces.Discrete(action_space)
    if isinstance(action_space, spaces.Discrete):
        return CategoricalActor(obs_dim, int(action_space.n), cfg)
    if isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
        return GaussianActor(obs_dim, int(action_space.shape[0]), cfg)
    raise ValueError(f"action space must be Discrete or a 1-D Box, got {action_space}")


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs, CleanRL-style.

    :param action_space: a Gymnasium ``Discrete`` or 1-D ``Box`` space, or an int (``Discrete(n)``).
    """

    def __init__(self, obs_dim: int, action_space: spaces.Space | int, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.obs_dim = obs_dim
        self.cfg = cfg
        self.actor = make_actor(obs_dim, action_space, cfg)
        self.critic = mlp(obs_dim, 1, cfg, out_std=1.0)

    @property
    def discrete(self) -> bool:
        return self.actor.discrete

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def get_action_and_value(
        self,
        obs: torch.Tensor,
        action: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score a stored) action: returns ``action, log_prob, entropy, value``.

        Log-probability and entropy come from one actor pass (``log_prob_and_entropy``), as PPO's
        update needs them per minibatch. Sampling draws from ``generator`` rather than the global
        RNG so that runs reproduce and resume exactly.
        """
        if action is None:
            action = self.actor.sample(obs, generator)
        log_prob, entropy = self.actor.log_prob_and_entropy(obs, action)
        return action, log_prob, entropy, self.get_value(obs)

    def act(self, obs: torch.Tensor,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``action, log_prob, value`` for a rollout step: one actor pass and one critic pass, no
        entropy (a rollout does not use it). Bit-identical to ``get_action_and_value`` minus entropy."""
        action, log_prob = self.actor.sample_and_log_prob(obs, generator)
        return action, log_prob, self.get_value(obs)

    def act_greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely (Discrete) or mean (Box) action; used for evaluation returns."""
        return self.actor.mode(obs)


def flat_params(module: nn.Module) -> torch.Tensor:
    """All parameters of ``module`` as one vector, in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])
