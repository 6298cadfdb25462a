"""The kernel's memory cgroups as a cap layer: one slot (``cgroup``) per running child,
handed out by the process's manager (``manager``)."""
