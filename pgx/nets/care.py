"""CARE (Sodhani et al. 2021, "Multi-Task Reinforcement Learning with Context-based Representations").

Each task comes with metadata — a sentence describing it. CARE encodes the sentence into a
context vector ``z``, uses ``z`` to attend over a mixture of K encoders of the state, and feeds the
mixed encoding together with ``z`` to the output MLP:

    z = W_c m_τ,    α = softmax(W_α z),    e = Σ_k α_k encoder_k(x),    y = head([e, z]).

Deviation from the paper: CARE's metadata embedding ``m_τ`` is a pretrained language model's
(RoBERTa) sentence embedding, which cannot be downloaded here. ``m_τ`` is instead the TF-IDF
vector of the task's text, fitted on the n task texts (dense, L2-normalised rows) and frozen as a
buffer; without texts it is the task's one-hot. TF-IDF knows only shared words, not meaning:
"open the drawer" and "drawer open" are close, "open" and "unlock" are unrelated. Also simpler
than the paper: the context encoder is one trainable linear layer, and ``x`` also carries the task
one-hot (the family appends it), which the paper's input does not.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

from pgx.nets.config import ArchConfig
from pgx.nets.shared import MultitaskNetwork, relu_mlp
from pgx.nets.policies import layer_init

__all__ = ["tfidf_embeddings", "CARENetwork"]


def tfidf_embeddings(texts: Sequence[str]) -> torch.Tensor:
    """TF-IDF vectors of ``texts``, fitted on ``texts`` themselves: ``(len(texts), vocabulary)``, float32.

    Rows are L2-normalised, so a dot product is a cosine: positive for texts sharing a word, zero
    for texts sharing none. Words are lower-cased runs of two or more letters or digits
    (scikit-learn's default), so ``"drawer-open-v3"`` is ``drawer``, ``open``, ``v3``.
    """
    # Imported here so that ``import pgx.nets`` does not pay for scikit-learn.
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"task_texts must be strings, got {text!r} at index {i}")
    try:
        matrix = TfidfVectorizer(norm="l2").fit_transform(texts).toarray()
    except ValueError as e:
        raise ValueError(f"task_texts contain no word of two or more characters: {texts!r}") from e
    embeddings = torch.as_tensor(matrix, dtype=torch.float32)
    empty = [texts[i] for i in torch.nonzero(embeddings.norm(dim=1) == 0).flatten().tolist()]
    if empty:
        warnings.warn(f"task_texts {empty!r} have no word of two or more characters: their tasks get a zero "
                      "metadata embedding", stacklevel=2)
    return embeddings


class CARENetwork(MultitaskNetwork):
    """K = ``cfg.modules`` state encoders mixed by attention from the task's context, then an output MLP.

    ``cfg.layers`` linear layers lie on the path from input to output: each encoder has
    ``layers // 2`` of them, the output MLP the remaining ``layers - layers // 2``.

    :param task_texts: one description per task (e.g. ``"drawer open"``), embedded by TF-IDF;
        ``None`` uses the one-hot as metadata.
    """

    def __init__(self, in_dim: int, out_dim: int, n_tasks: int, cfg: ArchConfig = ArchConfig(kind="care"),
                 task_texts: Sequence[str] | None = None):
        super().__init__(in_dim, out_dim, n_tasks)
        if cfg.layers < 2:
            raise ValueError(f"care needs layers >= 2 (an encoder layer and an output layer), got {cfg.layers}")
        if task_texts is None:
            metadata = torch.eye(n_tasks)
        else:
            if isinstance(task_texts, str) or len(task_texts) != n_tasks:
                raise ValueError(f"task_texts must hold one string per task ({n_tasks}), got {task_texts!r}")
            metadata = tfidf_embeddings(task_texts)
        self.register_buffer("metadata", metadata)  # (n_tasks, embedding_dim): frozen, saved with the net
        hidden, encoder_layers = cfg.hidden, cfg.layers // 2

        self.context_encoder = layer_init(nn.Linear(metadata.shape[1], hidden), std=1.0)
        self.attention = layer_init(nn.Linear(hidden, cfg.modules), std=1.0)
        self.encoders = nn.ModuleList(relu_mlp([in_dim] + [hidden] * encoder_layers, output_std=None)
                                      for _ in range(cfg.modules))
        self.head = relu_mlp([2 * hidden] + [hidden] * (cfg.layers - encoder_layers - 1) + [out_dim], cfg.output_std)

    def context(self, task: torch.Tensor) -> torch.Tensor:
        """``z (B, hidden)``: the context of each row's task, from its metadata embedding ``task @ metadata``."""
        return self.context_encoder(task @ self.metadata)

    def forward(self, x: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """``x (B, in_dim)``, ``task (B, n_tasks)`` → ``(B, out_dim)``."""
        self.check_inputs(x, task)
        z = self.context(task)
        attention = torch.softmax(self.attention(z), dim=-1)  # (B, K)
        encodings = torch.stack([encoder(x) for encoder in self.encoders], dim=1)  # (B, K, hidden)
        mixed = torch.einsum("bk,bkh->bh", attention, encodings)
        return self.head(torch.cat([mixed, z], dim=-1))
