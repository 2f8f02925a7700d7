"""``python -m vidzoo``: the ``vidzoo`` command."""
import sys

from .cli import main

sys.exit(main())
