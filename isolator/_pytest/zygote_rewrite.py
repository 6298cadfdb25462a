"""Imported by the zygote, as a preload, for the tests of a pytest session: from then on
the zygote imports test modules with their asserts rewritten, once, and every child it
forks starts with them ready (see ``rewrite``).

Importing it is what it does: ``preload`` names modules, it cannot call functions. The
pytest process never imports it.
"""

from __future__ import annotations

import _pytest.assertion.rewrite  # noqa: F401 - what every rewritten module imports first

from .rewrite import finder

finder().patterns = True
