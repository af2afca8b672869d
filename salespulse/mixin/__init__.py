"""The SalesPulse monitoring mixin: dashboards, recording and alert rules, k8s objects.

Everything here is derived from two declarations, :data:`state.kpis.KPIS` and the targets
file ``deploy/targets.yaml`` (:mod:`salespulse.mixin.targets`), and written into
``deploy/`` by ``salespulse generate`` (:mod:`salespulse.mixin.command`). The generated
files are checked in; ``tests/mixin/test_generated.py`` fails when they are out of date.
"""
