"""``python -m braintumor.cli``, as when the command line was one module."""
import sys

from . import main

sys.exit(main())
