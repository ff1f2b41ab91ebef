"""The sweep engine: checkpoints × device settings × times × chips × programmings × reads → one row per cell.

- ``config.py``: ``SweepConfig``, every option validated in one place (torch-free);
- ``grid.py``: device settings, checkpoints (with twins) and the keyed cells they span;
- ``program.py``: programming an analog layer with one device realization, and restoring it exactly;
- ``execute.py``: evaluating cells in this process, in worker processes or as Ray tasks;
- ``results.py``: the results folder (cells stored as they finish, ``results.parquet``), ``SweepResult``;
- ``analog.py``: which layers are analog in a cell (``--analog``, ``--analog-head``), wrapped and unwrapped;
- ``run.py``: ``run``, which puts these together;
- ``sensitivity.py``: a sweep whose cells differ by their analog selection, and its per-unit drop table.

Importing this package loads nothing heavy; the public entry point is ``noisesim.sweep``.
"""
