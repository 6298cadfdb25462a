"""Plain values and policies: no threads, no processes, no I/O.

What the user declares (options, normalised once into ``Limits`` and ``Reporting``),
the policies the engine consults (recycling, retries and memory escalation, leak
suspicion, the memory budget) and the counters it keeps (``Statistics``). Everything
here is pure logic, unit-tested without a child process.
"""
