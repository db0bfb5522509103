"""``python -m loopwise.demo``: serve the demo page on 127.0.0.1:8080 until Ctrl+C."""

import sys

from loopwise.http.server._cli import main

if __name__ == "__main__":
    sys.exit(main())
