"""`python -m horde_model_reference.cli` runs `hmr`."""

import sys

from horde_model_reference.cli.main import main

sys.exit(main())
