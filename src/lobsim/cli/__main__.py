"""``python -m lobsim.cli``: the same as the ``lobsim`` command."""

import sys

from lobsim.cli.commands import main

sys.exit(main())
