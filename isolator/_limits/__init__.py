"""One enforcement mechanism per module."""
