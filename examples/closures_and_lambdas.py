"""Lambdas, closures and functions defined in your script can all be isolated.

They are sent to the child by value (isolator uses dill for them), so they do not need
to live in an importable module. Run with ``python examples/closures_and_lambdas.py``.
"""

from collections.abc import Callable

from isolator import isolated

# 1. A lambda: isolated() also works as a plain function, not only as a decorator.
square = isolated(max_mem="128MB")(lambda x: x * x)
print("lambda:", square(12))


# 2. A closure: the child gets a copy of the variables it captured.
def make_scaler(factor: float) -> Callable[[list[float]], list[float]]:
    @isolated(max_mem="128MB")
    def scale(values: list[float]) -> list[float]:
        return [v * factor for v in values]

    return scale


double = make_scaler(2.0)
print("closure:", double([1.0, 2.5, 4.0]))


# 3. A function defined in the script *after* the first isolated calls above. The
#    process that forks isolator's children started at the first call, before this
#    function existed; the child still gets it.
@isolated(max_mem="128MB")
def word_count(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for word in text.split():
        counts[word] = counts.get(word, 0) + 1
    return counts


print("defined later:", word_count("to be or not to be"))

assert square(12) == 144
assert double([1.0]) == [2.0]
assert word_count("a a b") == {"a": 2, "b": 1}
print("done")
