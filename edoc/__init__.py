"""edoc: an e-document retention archive for Japanese businesses.

The package is the library (everything except argument parsing and printing, which
live in ``cli.py``). See README.md for the architecture and trust model.
"""

__version__ = "0.1.0"
