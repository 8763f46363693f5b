"""Nexus: an autonomous trading system for FX and futures.

Python is the control plane (gRPC services, orchestration); the hot paths are
Rust, reached through the typed wrapper `nexus.engine`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("nexus-trading")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
