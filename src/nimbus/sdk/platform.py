"""`nimbus.PLATFORM`: act on the running app from function code, e.g. tag a resource or raise a
function's `max_instances`. A function needs `uses=[nimbus.PLATFORM]` for it.

```python
@app.on_topic(nimbus.PLATFORM_EVENTS, pattern={"type": ["nimbus.resource.created"]},
              uses=[nimbus.PLATFORM])
def tag_it(event: nimbus.TopicEvent) -> None:
    nimbus.PLATFORM.tag(event.data["resource"], {"cost-center": "cc-1042"})
```
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from nimbus.sdk.client import call
from nimbus.services.control import (
    Describe,
    Description,
    SetMaxInstances,
    TagResource,
    UntagResource,
)
from nimbus.spec.system import PLATFORM_CONTROL


class PlatformControl:
    """The app's own functions and resources, as the platform runs them."""

    name = PLATFORM_CONTROL

    def describe(self, name: str) -> Description:
        """A function or resource now: its kind, owner, tags (and instance limits)."""
        return call(self.name, Describe(name=name), Description)

    def tag(self, name: str, tags: Mapping[str, str]) -> Description:
        """Add tags to a function or resource, overwriting a key it has."""
        return call(self.name, TagResource(name=name, tags=dict(tags)), Description)

    def untag(self, name: str, keys: Iterable[str]) -> Description:
        """Remove the tags with these keys (a key it does not have is ignored)."""
        return call(self.name, UntagResource(name=name, keys=tuple(keys)), Description)

    def set_max_instances(self, function: str, max_instances: int) -> Description:
        """Let `function` run up to `max_instances` instances at once (1-1000, and at least
        its `min_instances`); it applies at once, without cold starts for running instances."""
        op = SetMaxInstances(function=function, max_instances=max_instances)
        return call(self.name, op, Description)


PLATFORM = PlatformControl()
