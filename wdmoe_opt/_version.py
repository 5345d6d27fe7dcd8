"""The package version, in one place (read by the package face, the registry and io)."""

__version__ = "0.1.0"
