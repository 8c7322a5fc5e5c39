"""The package version: its one home (setup.py reads it, ``wsscl-fast --version`` prints it)."""
__version__ = "0.2.0"
