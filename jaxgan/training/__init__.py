"""The run path: config and presets in, a trained run directory out.

:mod:`.config` (the settings), :mod:`.cli` (flags), :mod:`.schedule` (phases by images shown),
:mod:`.build` (objective, optimizers, models, steps from a config), :mod:`.step` (the jitted train
step), :mod:`.loop` (``train``), :mod:`.checkpoint`, :mod:`.rundir`, :mod:`.logs` and
:mod:`.saved_run` (``open_run``).
"""
