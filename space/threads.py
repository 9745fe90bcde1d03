"""How many torch CPU threads each kind of request runs on (the vision slot itself, one
request at a time, is the queue's: `space.app`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class RunsOnThreads(Protocol):
    """What `runs_as` reads: torch CPU threads per kind of request (`thread_plan`)."""

    threads: dict[str, int]


B = TypeVar("B", bound=RunsOnThreads)


def thread_plan() -> dict[str, int]:
    """Torch CPU threads for a text query and for a vision-tower request.

    A text query is a dozen small matrix products: a second core barely shortens it but
    doubles its CPU, and under load CPU is what requests share (ViT-B/32, 2 cores, machine
    busy: 18.5 ms wall and 18 ms CPU per query on 1 thread, 24 ms and 28 ms on 2). The vision
    tower keeps torch's own choice for the machine, read here, at start-up.
    """
    import torch  # deferred: torch is heavy

    return {"query": 1, "vision": torch.get_num_threads()}


def runs_as(
    role: str,
) -> Callable[[Callable[Concatenate[B, P], R]], Callable[Concatenate[B, P], R]]:
    """Run a handler with `backend.threads[role]` torch threads on the thread serving it.

    torch keeps its thread count per OS thread (OpenMP), and a server thread serves any kind
    of request, so every handler sets its own count for as long as it runs.
    """

    def decorate(fn: Callable[Concatenate[B, P], R]) -> Callable[Concatenate[B, P], R]:
        @functools.wraps(fn)
        def wrapper(backend: B, *args: P.args, **kwargs: P.kwargs) -> R:
            import torch  # deferred: torch is heavy

            before = torch.get_num_threads()
            torch.set_num_threads(backend.threads[role])
            try:
                return fn(backend, *args, **kwargs)
            finally:  # a caller's own thread (a test, a script) gets its setting back
                torch.set_num_threads(before)

        return wrapper

    return decorate
