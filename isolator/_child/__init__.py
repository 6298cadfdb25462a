"""The child's side: code that runs in the zygote and in the task children it forks.

Nothing here imports the engine, the public API or the command line: the zygote must
stay small (every page it holds is copied into, and counted for, every child) and must
not load threads or locks it could fork in a bad state. It imports only ``_wire``,
``_errors``, ``_units`` and, when a heap must be walked, ``forensics``. A test asserts
this on a running zygote's ``sys.modules``.
"""
