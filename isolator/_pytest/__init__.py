"""The parts of isolator's pytest plugin (``isolator.pytest_plugin`` is the entry point).

``remote`` and ``leaks`` are imported in the pytest process; ``child``, ``rewrite`` and
``zygote_rewrite`` run where the test does, in the isolated child (the last one in the
zygote that forks it), and import nothing of pytest until a test needs it.
"""
