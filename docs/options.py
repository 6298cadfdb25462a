"""Keep docs/api.md's signatures and option tables equal to the one declaration of options.

    python docs/options.py            rewrite the generated parts of docs/api.md
    python docs/options.py --check    exit 1 (and say where) if they differ

The generated parts sit between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``
lines; everything else in the file is written by hand. tests/test_options.py runs the
check.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api.md"
sys.path.insert(0, str(ROOT))

from isolator import IsolatedExecutor, IsolatedPool, isolated  # noqa: E402
from isolator._dask.executor import DaskExecutor  # noqa: E402  # imports no distributed
from isolator._model import options  # noqa: E402

_REGION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /generated -->)",
                     re.DOTALL)


def signature(name: str, fn: Any) -> str:
    """``name(...)`` as ``inspect.signature`` shows it, without annotations: the explicit
    parameters, then every declared option (``options.show_options`` spelled them out)."""
    shown = []
    for parameter in inspect.signature(fn).parameters.values():
        if parameter.name == "self":
            continue
        text = parameter.name if parameter.default is parameter.empty \
            else f"{parameter.name}={parameter.default!r}"
        if parameter.kind is parameter.KEYWORD_ONLY and "*" not in shown:
            shown.append("*")
        shown.append(text)
        if parameter.kind is parameter.POSITIONAL_ONLY:
            shown.append("/")
    return f"```python\n{_wrapped(name, shown)}\n```\n"


def _wrapped(name: str, parameters: list[str], width: int = 88) -> str:
    """``name(a, b, ...)`` in lines of at most ``width``, broken between parameters only
    (a default such as ``report_dir``'s has spaces, and is still one piece of Python)."""
    lines = [f"{name}("]
    indent = " " * (len(name) + 1)
    for i, parameter in enumerate(parameters):
        piece = parameter + (")" if i == len(parameters) - 1 else ",")
        if lines[-1].strip("(") and len(lines[-1]) + 1 + len(piece) > width:
            lines.append(indent + piece)
        else:
            lines[-1] += ("" if lines[-1].endswith("(") else " ") + piece
    return "\n".join(lines)


def regions() -> dict[str, str]:
    call_own = options.own(options.CallOptions, options.LimitOptions,
                           options.ReportingOptions, options.RetryOptions)
    pool_own = options.own(options.PoolOptions, options.CallOptions)
    return {
        "isolated": signature("isolated", isolated),
        "IsolatedExecutor": signature("IsolatedExecutor", IsolatedExecutor),
        "IsolatedPool": signature("IsolatedPool", IsolatedPool),
        "DaskExecutor": signature("DaskExecutor", DaskExecutor),
        "limits": options.markdown(options.LimitOptions) + "\n",
        "reporting": options.markdown(options.ReportingOptions) + "\n",
        "retry": options.markdown(options.RetryOptions) + "\n",
        "call": options.markdown(options.CallOptions, *call_own) + "\n",
        "pool": options.markdown(options.PoolOptions, *pool_own) + "\n",
    }


def rewrite(text: str) -> str:
    wanted = regions()
    seen = set()

    def replace(match: re.Match[str]) -> str:
        seen.add(match["name"])
        return match.group(1) + wanted[match["name"]] + match.group(4)

    result = _REGION.sub(replace, text)
    missing = set(wanted) - seen
    if missing:
        raise SystemExit(f"docs/api.md has no generated part for {sorted(missing)}")
    return result


def main() -> int:
    text = API.read_text()
    wanted = rewrite(text)
    if "--check" in sys.argv:
        if wanted != text:
            print("docs/api.md differs from the declaration of options; run "
                  "python docs/options.py", file=sys.stderr)
            return 1
        return 0
    API.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
