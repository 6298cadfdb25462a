"""isolator on a Dask distributed cluster (the public names are in ``isolator.dask``).

Two sides, as the process map says: ``executor``, ``attempts`` and ``capacity`` run in
the client's process (they pickle, submit, retry, write reports and never start an
engine); ``worker`` runs on the cluster (the function each task runs on a worker, which
hands the task to that worker's own isolator engine, and the worker and scheduler
plugins). ``distributed`` is imported only by these modules.
"""
