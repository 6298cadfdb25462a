"""Imported by a task, then preloaded by the zygote: 24 MiB of written pages that every
child forked afterwards shares with the zygote."""

BLOCK = bytearray(b"x") * (24 << 20)
