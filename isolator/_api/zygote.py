"""What isolator's zygote holds for its children, for users who want to see it."""

from __future__ import annotations


def zygote_modules() -> tuple[str, ...]:
    """The modules the zygote has imported so that children start with them loaded, in
    the order it imported them: those named by ``preload``, the modules of the tasks'
    functions, and those that earlier tasks of the same function imported (learned).
    Empty while no task has run. Their pages are the zygote's, shared by every child
    and not counted against a child's cap (see docs/design.md, "A zygote that
    learns")."""
    from .._engine.engine import current_engine

    engine = current_engine()
    if engine is None:
        return ()
    return engine.ask(lambda: tuple(engine.preloaded))
