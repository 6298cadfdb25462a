"""The public API, run in the caller's threads: ``isolated``, the two pools and their
results.

Nothing here owns engine state: a call checks its options (once, when the function is
decorated or the pool made), pickles the work, hands it to the engine as a command and
waits on a future. The engine is imported on first use, not at import, so that a user's
module that says ``from isolator import isolated`` loads nothing of it into the zygote.
"""
