"""`python -m nimbus.spec.extract TARGET`: print the app's spec as JSON, in its own process.

The controller runs this so that user code (an app.py, or the modules a nimbus.yaml's handlers
are in) is never imported inside the controller.
"""

from __future__ import annotations

import sys

from nimbus.errors import SpecError
from nimbus.spec.loader import load_app


def main(argv: list[str]) -> int:
    try:
        spec = load_app(argv[0])
    except SpecError as error:
        sys.stderr.write(error.message + "\n")
        return 2
    sys.stdout.write(spec.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
