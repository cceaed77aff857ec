"""The subscriber of the publish-latency baseline: a second Python process on Redis pub/sub.

    python bench/pubsub_peer.py REDIS_URL CHANNEL

It prints `ready` once subscribed. For each message {"t": publisher's time.time(), ...} it
notes time.time() - t as soon as it has it; on {"end": true} it prints the latencies noted
since the last end as one JSON line; on {"stop": true} it exits.
"""

from __future__ import annotations

import sys
import time

import msgspec
import redis


def main() -> None:
    url, channel = sys.argv[1], sys.argv[2]
    client = redis.Redis.from_url(url)
    subscription = client.pubsub()
    subscription.subscribe(channel)
    while True:
        confirmed = subscription.get_message(timeout=1.0)
        if confirmed is not None and confirmed["type"] == "subscribe":
            break
    print("ready", flush=True)
    latencies: list[float] = []
    for message in subscription.listen():
        now = time.time()
        if message["type"] != "message":
            continue
        data = msgspec.json.decode(message["data"])
        if "t" in data:
            latencies.append(now - data["t"])
        elif data.get("end"):
            print(msgspec.json.encode(latencies).decode(), flush=True)
            latencies = []
        elif data.get("stop"):
            break
    subscription.close()
    client.close()


if __name__ == "__main__":
    main()
