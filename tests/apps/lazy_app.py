"""Like preload_app, without preload: the module is imported by each instance itself."""

import os

import nimbus

IMPORTED_IN = os.getpid()
app = nimbus.App("lazy")


@app.function()
def lazy(event: object) -> dict[str, int]:
    return {"imported_in": IMPORTED_IN, "pid": os.getpid()}


@app.function()
def missing(event: object) -> None:
    return None
