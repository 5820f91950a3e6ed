"""Actor-critic networks.

The paper uses a four-layer MLP policy. The actor and critic are separate MLPs (as in CleanRL's
``ppo.py``) so that per-sample gradients of ``log π(a|s)`` involve the actor's parameters only:
θ* in the paper is the actor.

Every layer with weights is an ``nn.Linear``. ``pgx.gradients`` relies on this: for a linear layer
the per-sample gradient is an outer product of the layer's input and its back-propagated error,
which it projects without ever materialising the per-sample gradient matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Categorical

__all__ = ["PolicyConfig", "layer_init", "mlp", "Actor", "ActorCritic", "flat_params"]


@dataclass(frozen=True)
class PolicyConfig:
    """Shape of the actor-critic MLPs."""

    hidden: int = 64
    """Width of every hidden layer."""
    layers: int = 4
    """Number of linear layers in each MLP (the paper's policy is a four-layer MLP)."""


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


class Actor(nn.Module):
    """Categorical policy π(a|s) over ``num_actions`` discrete actions."""

    def __init__(self, obs_dim: int, num_actions: int, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.net = mlp(obs_dim, num_actions, cfg, out_std=0.01)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, ``(batch, num_actions)``."""
        return self.net(obs)

    def distribution(self, obs: torch.Tensor) -> Categorical:
        return Categorical(logits=self.net(obs))

    def log_prob(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``log π(a|s)`` for each row: ``obs (N, obs_dim)``, ``actions (N,)`` → ``(N,)``."""
        logits = torch.log_softmax(self.net(obs), dim=-1)
        return logits.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs, CleanRL-style."""

    def __init__(self, obs_dim: int, num_actions: int, cfg: PolicyConfig = PolicyConfig()):
        super().__init__()
        self.obs_dim = obs_dim
        self.num_actions = num_actions
        self.cfg = cfg
        self.actor = Actor(obs_dim, num_actions, cfg)
        self.critic = mlp(obs_dim, 1, cfg, out_std=1.0)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def get_action_and_value(
        self,
        obs: torch.Tensor,
        action: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample (or score a stored) action: returns ``action, log_prob, entropy, value``.

        Sampling draws from ``generator`` rather than the global RNG so that runs reproduce and
        resume exactly.
        """
        logits = self.actor(obs)
        dist = Categorical(logits=logits)
        if action is None:
            action = torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)
        return action, dist.log_prob(action), dist.entropy(), self.get_value(obs)

    def act_greedy(self, obs: torch.Tensor) -> torch.Tensor:
        """The most likely action; used for evaluation returns."""
        return self.actor(obs).argmax(-1)


def flat_params(module: nn.Module) -> torch.Tensor:
    """All parameters of ``module`` as one vector, in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])
