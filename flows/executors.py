"""Run independent tasks on a local process pool or on a Ray cluster, the same way.

``execute(fn, shared, items, executor=...)`` calls ``fn(shared, item)`` once per item and
yields ``Outcome(index, value, error)`` as each one ends. ``fn`` must be a module-level
function (a Ray worker imports it by name); ``shared`` and every item travel by value, so a
task runs on any machine that has nnloom installed.

- ``"pool"``: ``concurrent.futures.ProcessPoolExecutor`` with ``jobs`` forked workers. A
  worker that dies (killed, ``os._exit``, out of memory) breaks the pool: the tasks it took
  down are run again, each in a pool of its own, so that one crashing task cannot take
  another with it; a task that kills its worker ``retries + 1`` times is an ``Outcome`` with
  ``error``.
- ``"ray"``: each item a Ray task (``num_cpus=1``, ``max_retries=retries``: Ray reruns a task
  whose worker died); ``shared`` is put in the object store once. ``address`` is None (a
  local Ray started for this run), ``"auto"`` (the cluster ``ray start --head`` started on
  this machine) or ``ray://host:10001`` (a remote head's client port).

An exception the task raises is returned in ``error`` too (tasks that must not fail catch
their own). ``on_start(index)`` hears a task as a pool worker picks it up (Ray: as it is
submitted). Closing the generator early (Ctrl-C) cancels what has not started.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from frontends.errors import NnloomError

__all__ = ["EXECUTORS", "Outcome", "ExecutorError", "execute", "connect_ray"]

EXECUTORS = ("pool", "ray")


class ExecutorError(NnloomError):
    """The executor cannot run tasks (Ray missing, its cluster unreachable)."""


@dataclass(frozen=True)
class Outcome:
    index: int
    value: Any = None
    error: str | None = None  # the task's exception, or why its worker died


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def execute(
    fn: Callable[[Any, Any], Any],
    shared: Any,
    items: list,
    *,
    executor: str = "pool",
    jobs: int = 2,
    address: str | None = None,
    retries: int = 1,
    on_start: Callable[[int], None] = lambda i: None,
) -> Iterator[Outcome]:
    if executor == "pool":
        yield from _pool(fn, shared, items, jobs=max(1, jobs), retries=retries, on_start=on_start)
    elif executor == "ray":
        yield from _ray(fn, shared, items, address=address, retries=retries, on_start=on_start)
    else:
        raise ExecutorError(f"unknown executor '{executor}'; choose from {', '.join(EXECUTORS)}")


def _pool(fn, shared, items, *, jobs, retries, on_start) -> Iterator[Outcome]:
    # fork: the workers see the parent's registries (benchmarks, generators) as they are
    context = multiprocessing.get_context("fork")
    crashes = [0] * len(items)
    todo = list(range(len(items)))
    isolated = False
    while todo:
        suspects = []
        # after a crash, every suspect runs alone: a pool of one per task, `jobs` at a time
        batches = [todo[i : i + jobs] for i in range(0, len(todo), jobs)] if isolated else [todo]
        for batch in batches:
            pools = [
                ProcessPoolExecutor(
                    max_workers=1 if isolated else min(jobs, len(batch)), mp_context=context
                )
                for _ in (batch if isolated else [0])
            ]
            try:
                futures = {}
                for k, index in enumerate(batch):
                    pool = pools[k] if isolated else pools[0]
                    futures[pool.submit(fn, shared, items[index])] = index
                started = set()
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in futures:
                        if future not in started and (future.running() or future.done()):
                            started.add(future)
                            on_start(futures[future])
                    for future in done:
                        index = futures[future]
                        try:
                            yield Outcome(index, value=future.result())
                        except BrokenProcessPool as exc:
                            # a task still queued when the pool broke is not to blame
                            crashes[index] += future in started
                            if crashes[index] > retries:
                                yield Outcome(
                                    index,
                                    error=f"the worker process died "
                                    f"({crashes[index]} times): {_describe(exc)}",
                                )
                            else:
                                suspects.append(index)
                        except Exception as exc:  # the task raised
                            yield Outcome(index, error=_describe(exc))
            except BaseException:  # Ctrl-C, or the caller closed the generator
                for pool in pools:
                    _stop(pool)
                raise
            for pool in pools:
                pool.shutdown(wait=True)
        todo, isolated = sorted(suspects), True


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: nothing new starts, and each worker gets SIGINT (a task's tool
    subprocess is killed by ``subprocess.run``), then SIGTERM if it lingers."""
    import os
    import signal

    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for worker in workers:
        if worker.is_alive():
            os.kill(worker.pid, signal.SIGINT)
    for worker in workers:
        worker.join(timeout=2)
        if worker.is_alive():
            worker.terminate()
            worker.join(timeout=2)


def connect_ray(address: str | None, *, num_cpus: int | None = None) -> ModuleType:
    """Import Ray and connect to ``address`` (see the module docstring); the ``ray`` module.
    Raises ``ExecutorError`` with one line when Ray is missing or the cluster unreachable."""
    try:
        import ray
    except ImportError:
        raise ExecutorError(
            "the Ray executor needs Ray: pip install 'nnloom[ray]' (or pip install 'ray[client]')"
        ) from None
    if ray.is_initialized():
        return ray
    import logging
    import os
    import warnings

    # CRITICAL: a failed start logs a screen of ERROR lines (the dashboard, its missing logs)
    # before it raises; the user gets the one line below instead
    kwargs = {
        "ignore_reinit_error": True,
        "log_to_driver": False,
        "logging_level": logging.CRITICAL,
    }
    if address is None:
        kwargs["num_cpus"] = num_cpus
        kwargs["include_dashboard"] = False
        # the local workers import nnloom as this process does
        path = os.environ.get("PYTHONPATH")
        if path:
            kwargs["runtime_env"] = {"env_vars": {"PYTHONPATH": path}}
    try:
        with warnings.catch_warnings():  # Ray Client warns before it raises: one line only
            warnings.simplefilter("ignore")
            ray.init(address=address, **kwargs)
    except Exception as exc:
        where = address or "a local Ray instance"
        raise ExecutorError(f"cannot reach the Ray cluster at {where}: {_describe(exc)}") from None
    return ray


def _ray(fn, shared, items, *, address, retries, on_start) -> Iterator[Outcome]:
    ray = connect_ray(address)
    from ray.exceptions import RayTaskError

    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(fn)
    shared_ref = ray.put(shared)
    refs = {}
    for index, item in enumerate(items):
        refs[task.remote(shared_ref, item)] = index
        on_start(index)
    pending = list(refs)
    try:
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                index = refs[ref]
                try:
                    yield Outcome(index, value=ray.get(ref))
                except RayTaskError as exc:  # the task raised: its own exception's text
                    cause = (
                        exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
                    )
                    yield Outcome(index, error=_describe(getattr(exc, "cause", None) or cause))
                except Exception as exc:  # its worker died more than `retries` times
                    yield Outcome(index, error=f"the Ray worker died: {_describe(exc)}")
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
