"""swiglu-check: numerical validation of gated-activation kernels against exact references."""

from ._version import __version__

__all__ = ["__version__"]
