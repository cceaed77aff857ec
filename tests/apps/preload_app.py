"""Records which process imported it, to tell a preloaded module from a per-instance import."""

import os

import nimbus

IMPORTED_IN = os.getpid()
app = nimbus.App("preload")


@app.function(preload=True)
def preloaded(event: object) -> dict[str, int]:
    return {"imported_in": IMPORTED_IN, "pid": os.getpid()}
