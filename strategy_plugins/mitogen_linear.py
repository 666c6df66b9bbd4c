"""Mitogen's linear strategy, from the mitogen package pinned in requirements.txt.

The lab scenario runs with it (molecule/lab/molecule.yml): Mitogen keeps one Python
interpreter per host and runs modules inside it, instead of one `docker exec` and a fresh
interpreter per task. Point `strategy_plugins` at this directory and set
`strategy = mitogen_linear` to use it elsewhere; without it the stock strategy runs.
"""

from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule

__all__ = ["StrategyModule"]
