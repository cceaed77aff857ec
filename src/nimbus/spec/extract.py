"""`python -m nimbus.spec.extract TARGET`: print the app's spec as JSON, in its own process.

The controller runs this so that importing user code never happens inside the controller.
"""

from __future__ import annotations

import sys

from nimbus.errors import SpecError
from nimbus.spec.loader import load_app


def main(argv: list[str]) -> int:
    out, sys.stdout = sys.stdout, sys.stderr  # what the app prints at import is not the spec
    try:
        spec = load_app(argv[0])
    except SpecError as error:
        sys.stderr.write(error.message + "\n")
        return 2
    finally:
        sys.stdout = out
    out.write(spec.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
