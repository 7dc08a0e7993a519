"""``python -m toolkit`` is the ``bptt`` command."""

import sys

from toolkit.cli import main

if __name__ == "__main__":  # not when re-imported as __mp_main__ by a spawned worker
    sys.exit(main())
