"""The context object an AWS-style handler receives, as the Lambda Python runtime builds it.

Lambda handlers read `context.aws_request_id`, `context.function_name`,
`context.get_remaining_time_in_millis()` and so on; this gives them the same attributes with
the same types (`memory_limit_in_mb` is a string there, read from the environment).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field

from nimbus.context import Context
from nimbus.events.aws import ACCOUNT, REGION

VERSION = "$LATEST"

_streams: dict[int, str] = {}


@dataclass(frozen=True, slots=True)
class CognitoIdentity:
    """Empty unless a Cognito identity invoked the function, as in the Lambda runtime."""

    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass(frozen=True, slots=True)
class LambdaContext:
    function_name: str
    memory_limit_in_mb: str
    invoked_function_arn: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float
    """Wall-clock time (seconds since the epoch) at which the invocation times out."""
    function_version: str = VERSION
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: None = None
    tenant_id: None = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.deadline * 1000) - int(time.time() * 1000))

    def log(self, message: object) -> None:
        """Lambda's `context.log`: a line of output, which nimbus captures as a log record."""
        sys.stdout.write(str(message))

    @classmethod
    def from_context(
        cls, context: Context, *, region: str = REGION, account: str = ACCOUNT
    ) -> LambdaContext:
        name = context.function_name
        return cls(
            function_name=name,
            memory_limit_in_mb=str(context.memory_mb),
            invoked_function_arn=f"arn:aws:lambda:{region}:{account}:function:{name}",
            aws_request_id=context.request_id,
            log_group_name=f"/aws/lambda/{name}",
            log_stream_name=log_stream_name(),
            deadline=context.deadline,
        )


def log_stream_name() -> str:
    """One stream per instance, named as Lambda names them: `2024/05/01/[$LATEST]<hex id>`.

    Instances are forked from one zygote, so the name is made on first use in each process.
    """
    pid = os.getpid()
    name = _streams.get(pid)
    if name is None:
        name = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[{VERSION}]{os.urandom(16).hex()}"
        _streams.clear()
        _streams[pid] = name
    return name
