"""pgx: PolicyGradEx — grouping RL tasks by first-order estimates of subset fine-tuning.

The package computes; the book in ``book/`` narrates. Data flows one way:
family → meta-policy → gradient features → surrogate → affinity → groups.
"""

__version__ = "0.1.0"
