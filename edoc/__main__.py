"""``python -m edoc`` reaches the same click group as the ``edoc`` console script."""

from cli import main

main()
