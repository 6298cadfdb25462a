"""The hard cap: the warden samples every running task's process tree.

It reads ``RssAnon + RssShmem`` of each process in the tree and counts what the task
holds of its own (see ``_wire.procfs``): a lone child's memory beyond the zygote's pages
it shares (the interpreter and the preloaded modules count once, in the zygote; the
copies it makes of them count, from its rollup read between samples), and in a tree of
several processes each one's proportional share of what they share copy-on-write. It
acts on the sum: past the soft limit it signals the child once (and once more if the
task goes on a second later), so the child raises
``MemoryLimitExceeded`` where it stands and can report; past the hard cap it kills the
tree at once with SIGKILL. This holds for native code that holds the GIL, because the
sampler runs in another process than the task, and whatever the caller does (a thread
of its holding the GIL in a long sort, a garbage collection of a big heap), because it
runs in another process than the caller too.

The interval adapts: 10 ms while usage is low and flat, shrinking with the time the task
would need at its current growth rate to reach its soft limit (the cap once the soft
signal was sent), down to 0.5 ms near the cap while it grows (2 ms while it holds
steady there). Without a cap, 50 ms: the samples only draw the timeline. The process
tree is re-listed every 50 ms, every 10 ms past half the cap (a listing
costs about three samples).
Sampling is the one place isolator polls: the kernel offers no cheap RSS notification
outside cgroups.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .._wire.procfs import RollupReader, StatusReader, children
from .._wire.spec import BREACH_SIGNAL

SLOW = 0.010
FAST = 0.0005
STEADY = 0.002  # near the cap but not growing: a spike from here is caught within 2 ms
UNCAPPED = 0.050  # nothing to enforce: the samples only draw the timeline and the peak
TREE_SCAN = 0.010  # how often the tree is re-listed near the cap (past half of it)
TREE_SCAN_FAR = 0.050  # and far from it: listing costs three times a sample
TIMELINE_POINTS = 2000
FLAT = 1 << 20  # bytes per second: slower growth than this is no growth
SOFT_GRACE = 1.0  # seconds a task has to end after its soft limit's exception


@dataclass
class Watch:
    """What the sampler knows about one task's process tree."""

    pid: int
    limit: int | None
    soft: int | None
    started: float = field(default_factory=time.monotonic)
    peak: int = 0
    last: int = 0
    last_time: float = 0.0
    last_scan: float = 0.0
    soft_sent: bool = False
    soft_at: float = 0.0  # when the soft limit's signal was sent
    reminded: bool = False  # it was sent again, SOFT_GRACE later: the task caught it
    settled: bool = False  # the current job's outcome has arrived (set by the engine)
    killed: bool = False
    timeline: list[tuple[float, int]] = field(default_factory=list)
    step: float = 0.01
    rate: float = 0.0  # bytes per second, as the interval sees it (see _next_interval)
    readers: dict[int, StatusReader] = field(default_factory=dict)
    pidfds: dict[int, int] = field(default_factory=dict)
    # In a tree of several processes: each one's proportional share of the memory it
    # shares copy-on-write, and its RSS when that was read (see ``counted``).
    shares: dict[int, tuple[int, int]] = field(default_factory=dict)
    rollups: dict[int, RollupReader] = field(default_factory=dict)
    # Alone in its tree: the RSS it started with (the zygote's pages it shares, which
    # are not its own: as the child read it for its HELLO, before the task ran, so a
    # task that allocated before the first sample still counts that), and at the last
    # read of its rollup, its private pages and RSS.
    hello_rss: int = 0
    private: tuple[int, int] | None = None
    rollup_at: float = 0.0
    rollup_every: float = 0.05

    def reset(self, limit: int | None, soft: int | None) -> None:
        """A reused worker starts its next task: fresh peak, timeline and soft signal."""
        self.limit, self.soft = limit, soft
        self.started = time.monotonic()
        self.peak, self.soft_sent, self.step, self.rate = 0, False, 0.01, 0.0
        self.soft_at, self.reminded, self.settled = 0.0, False, False
        self.timeline = []

    def track(self, pid: int) -> None:
        try:
            self.readers[pid] = StatusReader(pid)
            self.pidfds[pid] = os.pidfd_open(pid)
        except OSError:  # gone before we looked
            reader = self.readers.pop(pid, None)
            if reader is not None:
                reader.close()

    def scan(self, now: float) -> None:
        self.last_scan = now
        for pid in list(self.readers):
            for child in children(pid):
                if child not in self.readers:
                    self.track(child)
        if len(self.readers) > 1:
            self._share()
        else:
            self.shares.clear()
            # Past the soft limit the child walks its heap, which touches every object
            # and so copies the zygote's pages it shares: those copies are the report's
            # cost (bounded by the zygote's size, which the child's walk budget leaves
            # room for), not the task's growth, so its private pages are not read again.
            if not self.soft_sent and now - self.rollup_at >= self.rollup_every:
                self._own(now)

    def _rollup(self, pid: int) -> RollupReader | None:
        reader = self.rollups.get(pid)
        if reader is None:
            try:
                reader = self.rollups[pid] = RollupReader(pid)
            except OSError:  # gone
                return None
        return reader

    def _share(self) -> None:
        """Read each process's proportional share: after a fork, parent and children
        share the task's pages, and counting each process's RSS would count them once
        per process (a 64 MiB array and four idle workers came to 320 MiB)."""
        for pid, reader in self.readers.items():
            rollup = self._rollup(pid)
            self.shares[pid] = (rollup.pss(), reader.rss()) if rollup else (0, 0)

    def _own(self, now: float) -> None:
        """Read the lone process's private pages: the copies it made of pages it
        shared with the zygote count too, though its RSS did not grow for them. Read
        less often the more it costs (it walks the page tables of the whole process)."""
        rollup = self._rollup(self.pid)
        if rollup is None:
            return
        started = time.monotonic()
        private, rss = rollup.private(), self.readers[self.pid].rss()
        cost = time.monotonic() - started
        self.rollup_at, self.rollup_every = now, max(TREE_SCAN_FAR, 20 * cost)
        self.private = (private, rss)

    def own(self, rss: int) -> int:
        """What the process alone in its tree counts: its RSS beyond what it started
        with (the zygote's pages, shared), or its private pages at the last rollup and
        its growth since, whichever is more."""
        grown = rss - self.hello_rss
        if self.private is not None:
            private, then = self.private
            grown = max(grown, private + rss - then)
        return max(0, grown)

    def counted(self, pid: int, rss: int) -> int:
        """The memory a process counts for now: its RSS alone in its tree; else its
        share at the last scan plus whatever its RSS grew since, all of it counted (new
        pages are its own until the next scan says otherwise)."""
        share = self.shares.get(pid)
        if share is None:
            return rss
        pss, then = share
        return max(0, pss + rss - then)

    def record(self, now: float, total: int) -> None:
        new_peak = total > self.peak
        self.peak = max(self.peak, total)
        offset = now - self.started
        # A new peak is always kept: the last samples before a kill are the ones a
        # report's reader needs, and they come faster than the timeline's step.
        if not self.timeline or new_peak or offset - self.timeline[-1][0] >= self.step:
            self.timeline.append((offset, total))
            if len(self.timeline) > TIMELINE_POINTS:
                del self.timeline[1::2]
                self.step *= 2

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Signal the child's group and every tracked process (setsid escapees too)."""
        try:
            os.killpg(self.pid, signum)
        except OSError:
            pass
        for fd in self.pidfds.values():
            try:
                signal.pidfd_send_signal(fd, signum)
            except OSError:
                pass

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
        for rollup in self.rollups.values():
            rollup.close()
        for fd in self.pidfds.values():
            os.close(fd)
        self.readers.clear()
        self.rollups.clear()
        self.pidfds.clear()


def _signal(pid: int) -> None:
    try:
        os.kill(pid, BREACH_SIGNAL)
    except OSError:  # gone: its exit tells the rest
        pass


class Sampler:
    """Every watched tree, sampled in rounds. The warden's one thread calls ``round`` when
    the interval it returned last has passed, and hands it watches between rounds."""

    def __init__(self, acting: Callable[[Watch], None] = lambda watch: None) -> None:
        self.watches: dict[int, Watch] = {}
        # Called just before the sampler signals or kills a tree, so that what it did
        # is published before the child's end can be seen.
        self._acting = acting

    def watch(self, watch: Watch) -> None:
        """Watch a child that has just said HELLO: its first sample is taken now."""
        watch.track(watch.pid)
        watch.last_scan = time.monotonic()  # a child just started has no children to list
        self.watches[watch.pid] = watch
        self._sample(watch, time.monotonic())

    def unwatch(self, pid: int) -> Watch | None:
        watch = self.watches.pop(pid, None)
        if watch is not None:
            watch.close()
        return watch

    def round(self) -> float | None:
        """Sample every tree; the seconds until the next round (None: nothing to watch)."""
        if not self.watches:
            return None
        now = time.monotonic()
        return min(self._sample(w, now) for w in list(self.watches.values()))

    def _sample(self, w: Watch, now: float) -> float:
        near = w.limit is not None and w.last * 2 >= w.limit
        if now - w.last_scan >= (TREE_SCAN if near else TREE_SCAN_FAR):
            w.scan(now)
        if w.shares:
            total = sum(w.counted(pid, reader.rss()) for pid, reader in w.readers.items())
        else:  # a process alone in its tree, nearly always: what it holds of its own
            total = w.own(w.readers[w.pid].rss()) if w.pid in w.readers else 0
        w.record(now, total)
        interval = self._next_interval(w, now, total)
        w.last, w.last_time = total, now
        if w.killed or w.limit is None:
            return interval
        if total >= w.limit:
            w.killed = True
            self._acting(w)
            w.kill()
        elif w.soft is not None and total >= w.soft and not w.soft_sent:
            w.soft_sent, w.soft_at = True, now
            self._acting(w)
            _signal(w.pid)
        elif w.soft_sent and not (w.reminded or w.settled) and now - w.soft_at >= SOFT_GRACE:
            # The task did not end within the grace: it caught the exception. The second
            # signal makes the child report from where it stands and end.
            w.reminded = True
            _signal(w.pid)
        return interval

    @staticmethod
    def _next_interval(w: Watch, now: float, total: int) -> float:
        if w.limit is None:
            return UNCAPPED
        elapsed = now - w.last_time
        rate = (total - w.last) / elapsed if w.last_time and elapsed > 0 else 0.0
        # Halved at each sample that shows less: one flat sample in a fast growth (the
        # task was off the CPU for a moment) must not send the next sample 10 ms away,
        # where a task growing 2.5 MiB/ms passed a 64 MiB cap from 44 MiB.
        w.rate = max(rate, w.rate / 2)
        if w.limit - total <= w.limit // 5:
            return FAST if w.rate >= FLAT else STEADY
        if w.rate < FLAT:
            return SLOW
        # Aimed at the soft limit while it is ahead: crossed late, it leaves the child
        # less room to raise and report before the cap.
        ahead = w.soft if w.soft is not None and not w.soft_sent else w.limit
        return max(FAST, min(SLOW, max(ahead - total, 0) / w.rate / 4))
