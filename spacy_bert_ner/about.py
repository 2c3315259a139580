"""The package version, in one place: setup.cfg reads it, and saved pipelines record it."""

__version__ = "0.1.0"
