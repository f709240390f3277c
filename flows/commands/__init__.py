"""Engine command modules: each has ``register(app, bench_app)`` (see ``flows.cli``)."""
