"""kbuild: declarative, reproducible, multi-arch container image builds for OpenStack."""

__version__ = "0.1.0"
