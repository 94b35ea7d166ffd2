"""Benchmarks on the simulator: corral against a baseline in the same run.

Each benchmark ``X`` (api, inventory, massrun, scheduler, vsphere) is laid out the same way,
imports pointing down only:

- ``X.py`` runs it (and the modules named after it: ``X_worker``, ``X_ha``, ``X_floor``, ...);
- ``X_report.py`` holds its results, targets, tables, JSON and ``docs/benchmarks.md`` rows;
- ``X_settings.py`` its settings, which both of the above import (api's are the arguments of
  ``run_api``);
- :mod:`corral.bench.common` what every benchmark shares; :mod:`corral.bench.cli` the
  ``corral bench`` commands, which import a benchmark only when it runs;
  :mod:`corral.bench.plots` the figures ``--plot`` draws (matplotlib, imported only then) and
  :mod:`corral.bench.progress` how a run shows its progress on stderr.

``fill`` is one module. Only ``scheduler`` needs numpy and only ``--plot`` matplotlib (the
``corral[bench]`` extra).
"""
