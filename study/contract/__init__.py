"""The contract: what the driver, the trial library and the analysis agree on, at the bottom of the project.

``spec/`` (the study spec's pydantic models, YAML loading, grid expansion), ``keys`` (every metric key, tag, role and
artifact path, formatted and parsed), and tracking (``tracking``: the ``Tracker`` protocol and its records;
``runlog``: a trial's run; ``store``: where the store is; ``experiment``: the driver's writes; the two backends
``mlflow_backend`` and ``memory_backend``). It imports pydantic, numpy and ruamel, never torch and nothing else of the
project (tests/test_layers.py checks both); everything above speaks through it. This file imports nothing.
"""
