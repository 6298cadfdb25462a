"""The cgroup cap layer as the engine uses it: a slot for a child that asks for one, its
OOM verdict at the child's exit, and the slot given back off the loop.

Found on first use (``CgroupManager.detect`` probes the machine once). Giving a slot
back kills what is left in it and, on cgroup v1, empties its page cache: writes the
kernel may take milliseconds to finish, so the engine posts them to its reports thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._errors import ConfigurationError

if TYPE_CHECKING:
    from ..._model.values import Limits
    from .cgroup import CgroupSlot
    from .manager import CgroupManager


class CgroupLayer:
    """The engine's memory cgroups, found on first use."""

    def __init__(self) -> None:
        self._manager: CgroupManager | None = None
        self._detected = False

    def slot_for(self, limits: Limits) -> CgroupSlot | None:
        """A slot limited to ``max_mem`` when ``limits`` ask for the layer and one exists."""
        if limits.cgroup is False or limits.max_mem is None:
            return None
        manager = self._find()
        if manager is None:
            if limits.cgroup is True:
                raise ConfigurationError(
                    "cgroup=True but no writable memory cgroup was found "
                    "(see docs/design.md, 'The cap, in layers'); use cgroup='auto'")
            return None
        slot = manager.acquire()
        slot.set_limit(limits.max_mem)
        return slot

    def release(self, slot: CgroupSlot) -> None:
        """Kill what is left in ``slot`` and make it free again (slow: off the loop)."""
        if self._manager is not None:
            self._manager.release(slot)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()

    def _find(self) -> CgroupManager | None:
        if not self._detected:
            from .manager import CgroupManager

            self._manager = CgroupManager.detect()
            self._detected = True
        return self._manager
