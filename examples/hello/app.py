"""The README's app: one HTTP function and one plain function."""

import nimbus

app = nimbus.App("hello")


@app.http("GET", "/hello/{name}")
def hello(request: nimbus.Request, context: nimbus.Context) -> dict[str, object]:
    context.logger.info("greeting %s", request.params["name"])
    return {"hello": request.params["name"], "cold_start": context.cold_start}


@app.function(timeout=10)
def add(event: dict[str, int]) -> int:
    return event["a"] + event["b"]
