"""The parts of isolator's pytest plugin (``isolator.pytest_plugin`` is the entry point).

In the pytest process: ``remote`` (a test made fit to send, its failure made fit to
report) and ``peaks`` (``--isolator-report``). In the child: ``child`` (the test as it
runs there) and ``rewrite`` (pytest's assertion rewriting, which ``zygote_rewrite``
installs in the zygote). ``leaks`` has a half on each side. What runs in the child
imports nothing of pytest until a test needs it.
"""
