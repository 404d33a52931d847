"""Upstream's module path: `GitHubBackend` with upstream's constructor (see `compat/upstream_backends.py`)."""

from horde_model_reference.compat.upstream_backends import GitHubBackend

__all__ = ["GitHubBackend"]
