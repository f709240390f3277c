"""Engine command modules: each has its engine's ``generate``, ``can_run`` check and bench
(registered in ``flows.engines``) and ``register(app, bench_app)`` for its own commands."""
