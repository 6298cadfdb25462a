"""The wire: the only code that both sides of the process boundary import.

Everything here runs in the caller's process (the engine) *and* in the zygote and its
children, so it imports nothing but the standard library and ``isolator._errors`` /
``isolator._units``: frames (``frames``), pickling across the boundary (``pickling``),
what a child is told before its task (``spec``), Linux process controls (``platform``)
and reading memory from ``/proc`` (``procfs``).
"""
