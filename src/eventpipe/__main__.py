"""`python -m eventpipe` runs the command line."""

import sys

from eventpipe.cli import main

sys.exit(main())
