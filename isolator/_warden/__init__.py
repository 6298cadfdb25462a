"""The warden: a small single-threaded process that enforces every child's cap.

It samples each running task's process tree, signals the soft limit and kills at the
cap (``sampling``), taking requests from the engine between rounds (``main``). It is a
process of its own, not a thread of the caller, because a thread of the caller shares
the caller's GIL: a caller thread holding it (a sort of a few million items, a garbage
collection of a big heap) kept a sampler thread from running for seconds, and a task
under a 256 MB cap reached 982 MiB before it was killed.
"""
