"""The statistics under both the trial and the report: the plateau rule (``plateau``), the memorization-onset rule
(``onset``), the Inception Score and its bootstrap (``stats``), the nearest-neighbour copy test (``neighbours``).

numpy and scipy on top of the contract (``study.contract``) and nothing else of the project: the trial library
(``trainables/``: the stoppers and scores) and the report (``analysis/``) import them, so a decision the trial makes
is the report's own. This ``__init__`` imports nothing.
"""
