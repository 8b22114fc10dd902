"""``python -m dockyard.serving serve``: the entry point a managed container (or the process
runtime) starts."""

import sys

from dockyard.serving.server import main

sys.exit(main(sys.argv[1:]))
