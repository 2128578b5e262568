"""``python -m lobsim``: the same as the ``lobsim`` command (and ``python -m lobsim.cli``)."""

import sys

from lobsim.cli.commands import main

sys.exit(main())
