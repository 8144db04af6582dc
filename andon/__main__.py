"""`python -m andon`: the same as the `andon` command."""

import sys

from andon.app.main import main

if __name__ == "__main__":
    sys.exit(main())
