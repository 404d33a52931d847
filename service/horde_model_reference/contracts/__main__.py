"""`python -m horde_model_reference.contracts`: see the package docstring."""

import sys

from horde_model_reference.contracts._cli import main

if __name__ == "__main__":
    sys.exit(main())
