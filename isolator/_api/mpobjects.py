"""multiprocessing's own objects as task arguments and ``initargs``.

The stdlib pools hand their workers a Manager's proxies, Locks and Queues by
inheritance (fork) or while spawning them, and multiprocessing pickles such objects only
then. isolator's children are neither: they are forked from its zygote, long after the
caller made the object. So a task is pickled as if its child were being spawned
(``multiprocessing.context.set_spawning_popen``, and the same in ``multiprocess``, the
dill-based fork of multiprocessing), with three adjustments:

* a file descriptor (a Queue's pipe, a shared ``Value``'s memory) goes as the caller's
  ``/proc/<pid>/fd/<n>``, which the child opens again, checked to be the same file: a
  descriptor cannot be passed to a process that is not being created, and a pipe or a
  file can be reopened this way; a socket (a duplex ``Pipe()``) cannot, and is refused;
* a Lock, Semaphore or Queue made in the ``fork`` context (Linux's default) is refused
  with what to use instead: its POSIX semaphore was unlinked at creation, so only
  processes forked from the caller can ever reach it; one made in the ``spawn`` or
  ``forkserver`` context is named, and the child opens it by its name;
* a Queue's ``put`` in the child writes to the pipe at once instead of through a feeder
  thread: a child leaves through ``os._exit`` when its unit is done, which would lose
  what such a thread had not written yet. So that a task can put without waiting for
  the caller to read, the Queue's pipe is enlarged to 1 MiB when it is sent (a put
  beyond what the pipe holds waits for the reader).

A Manager's proxy pickles itself with the caller's authkey in this mode (as for a
spawned child), so the child can talk to the manager; the key travels inside the task's
pickle over the child's private socket, and is never written anywhere else.

The functions at the end run in the child, imported by reference while the task is
unpickled; this module imports nothing heavy, so that costs nothing.
"""

from __future__ import annotations

import contextlib
import copyreg
import os
import stat
import sys
import types
from collections.abc import Iterator, Mapping
from typing import Any

from .._wire.pickling import Refused

_FAMILIES = ("multiprocessing", "multiprocess")
PIPE_SIZE = 1 << 20  # what a Queue's pipe may hold when a child has it (see _enlarge)
_INSTEAD = ("make it through a Manager (multiprocessing.Manager().Queue(), .Lock(), "
            "...), or in the spawn context (multiprocessing.get_context('spawn').Queue())")


class MultiprocessingObjects:
    """The ``pickling.Extension`` of every task the caller's side sends."""

    markers: tuple[bytes, ...] = (b"multiprocess",)  # a module of either family

    def reduce(self, obj: Any) -> Any:
        module = type(obj).__module__
        if not module.startswith(_FAMILIES):
            return NotImplemented
        family = module.partition(".")[0]
        queues = sys.modules.get(f"{family}.queues")
        if queues is not None and isinstance(obj, (queues.Queue, queues.SimpleQueue)):
            if _unnamed(obj._rlock):
                raise Refused(_fork_made(f"a {type(obj).__qualname__}", family))
            if isinstance(obj, queues.Queue):
                _enlarge(obj._writer.fileno())
                return (rebuild_queue, (type(obj), obj.__getstate__()))
        elif _unnamed(obj):
            raise Refused(_fork_made(f"a {type(obj).__qualname__}", family))
        return NotImplemented

    def dispatch_table(self) -> Mapping[type, Any]:
        table: dict[type, Any] = dict(copyreg.dispatch_table)
        for family in _FAMILIES:
            reduction = sys.modules.get(f"{family}.reduction")
            if reduction is not None:
                table.update(reduction.ForkingPickler._extra_reducers)
        return table

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        contexts = [sys.modules[f"{f}.context"] for f in _FAMILIES
                    if f"{f}.context" in sys.modules]
        before = [context.get_spawning_popen() for context in contexts]
        for context in contexts:
            context.set_spawning_popen(_ZygoteChild())
        try:
            yield
        finally:
            for context, popen in zip(contexts, before, strict=True):
                context.set_spawning_popen(popen)

    def by_value(self, obj: Any) -> bytes:
        """Through multiprocess's pickler, which is dill's with multiprocess's reducers
        (multiprocessing's are added), as ``multiprocess.Pool`` sends its tasks."""
        import importlib
        import io

        from .._wire.pickling import PROTOCOL, by_name

        forking: Any = importlib.import_module("multiprocess.reduction").ForkingPickler
        extension = self

        class ByValue(forking):  # type: ignore[misc]
            dispatch: Any  # dill's table of savers, by type (see pickling.by_name)

            def __init__(self, file: io.BytesIO) -> None:
                super().__init__(file, PROTOCOL, recurse=True)
                self.dispatch_table.update(extension.dispatch_table())
                self.dispatch = by_name(self.dispatch)

            def reducer_override(self, obj: Any) -> Any:
                return extension.reduce(obj)

        buffer = io.BytesIO()
        ByValue(buffer).dump(obj)
        return buffer.getvalue()


OBJECTS = MultiprocessingObjects()


def _enlarge(fd: int) -> None:
    """Let a Queue's pipe hold what a child may put before the caller reads it: 1 MiB
    (Linux's most for an unprivileged process) instead of 64 KiB."""
    import fcntl

    try:
        with open("/proc/sys/fs/pipe-max-size") as fh:
            most = int(fh.read())
        if fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < min(most, PIPE_SIZE):
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(most, PIPE_SIZE))
    except OSError:  # a smaller pipe still works; a put waits for the reader sooner
        pass


def _unnamed(obj: Any) -> bool:
    """A SemLock-based object made in the fork context: its semaphore has no name."""
    semlock = getattr(obj, "_semlock", None)
    return semlock is not None and type(semlock).__name__ == "SemLock" and semlock.name is None


def _fork_made(what: str, family: str) -> str:
    return (f"{what} made in {family}'s 'fork' context (the default on Linux) can only "
            "be inherited by processes forked from this one, and isolator's children are "
            f"forked from its zygote: {_INSTEAD.replace('multiprocessing', family)}")


class _ZygoteChild:
    """Stands for the process being spawned while a task is pickled (what
    ``multiprocessing``'s Popen objects are to ``reduction.DupFd``)."""

    def duplicate_for_child(self, fd: int) -> int:
        return fd

    def DupFd(self, fd: int) -> ReopenedFd:
        return ReopenedFd(fd)


class ReopenedFd:
    """A file descriptor of the caller, opened again by the child through ``/proc``."""

    def __init__(self, fd: int) -> None:
        import fcntl

        facts = os.fstat(fd)
        if stat.S_ISSOCK(facts.st_mode):
            raise Refused("a socket (the connection of a duplex multiprocessing.Pipe(), "
                          "say) cannot be reopened by a process that did not inherit it: "
                          "use Pipe(duplex=False), or " + _INSTEAD)
        self.path = f"/proc/{os.getpid()}/fd/{fd}"
        self.flags = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE
        self.identity = (facts.st_dev, facts.st_ino)

    def detach(self) -> int:
        """In the child: the descriptor, open on the caller's file (multiprocessing calls
        this while it rebuilds a Connection or an Arena)."""
        fd = os.open(self.path, self.flags | os.O_CLOEXEC)
        facts = os.fstat(fd)
        if (facts.st_dev, facts.st_ino) != self.identity:
            os.close(fd)
            raise OSError(f"{self.path} is no longer the file the task was given: the "
                          "caller closed it before the task ran")
        return fd


# -- in the child ----------------------------------------------------------------------------

def rebuild_queue(cls: type[Any], state: tuple[Any, ...]) -> Any:
    """A Queue sent to a child, whose ``put`` writes at once (see the module's doc)."""
    queue: Any = object.__new__(cls)  # as unpickling makes it, then its own state
    queue.__setstate__(state)
    joinable = hasattr(queue, "_unfinished_tasks")
    queue.put = types.MethodType(_put_joinable if joinable else _put, queue)
    return queue


def _encoded(queue: Any, obj: Any, block: bool, timeout: float | None) -> bytes:
    if queue._closed:
        raise ValueError(f"Queue {queue!r} is closed")
    if not queue._sem.acquire(block, timeout):
        import queue as stdlib_queue

        raise stdlib_queue.Full
    try:
        return bytes(_pickler_of(type(queue)).dumps(obj))
    except BaseException:
        queue._sem.release()  # the object never went in
        raise


def _pickler_of(cls: type[Any]) -> Any:
    """The ForkingPickler of the family the Queue class (or its base) comes from."""
    for klass in cls.__mro__:
        pickler = getattr(sys.modules.get(klass.__module__), "_ForkingPickler", None)
        if pickler is not None:
            return pickler
    raise TypeError(f"{cls!r} is not a multiprocessing Queue")


def _write(queue: Any, data: bytes) -> None:
    if queue._wlock is None:
        queue._send_bytes(data)
    else:
        with queue._wlock:
            queue._send_bytes(data)


def _put(queue: Any, obj: Any, block: bool = True, timeout: float | None = None) -> None:
    _write(queue, _encoded(queue, obj, block, timeout))


def _put_joinable(queue: Any, obj: Any, block: bool = True, timeout: float | None = None
                  ) -> None:
    data = _encoded(queue, obj, block, timeout)
    with queue._cond:  # counted before it can be taken, as JoinableQueue.put does
        queue._unfinished_tasks.release()
    _write(queue, data)
