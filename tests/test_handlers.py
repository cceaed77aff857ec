"""How a handler's error is reported: its own frames and the chain of causes, none of the
platform's frames (the runtime that called it, the SDK that raised a service's error)."""

from __future__ import annotations

import pytest

from nimbus.compute.handlers import error_info
from nimbus.errors import PlatformUnavailable
from nimbus.sdk.queue import Queue


def failing_handler() -> None:
    try:
        {}["missing"]
    except KeyError as error:
        raise ValueError("could not price the order") from error


def test_an_error_keeps_the_chain_of_causes() -> None:
    with pytest.raises(ValueError) as raised:
        failing_handler()
    info = error_info("Handler", raised.value)
    text = "\n".join(info.traceback)
    assert (info.type, info.message) == ("ValueError", "could not price the order")
    assert "KeyError: 'missing'" in text
    assert "The above exception was the direct cause of the following exception:" in text
    assert text.endswith("ValueError: could not price the order")
    assert "in failing_handler" in text


def test_the_sdk_frames_are_left_out() -> None:
    with pytest.raises(PlatformUnavailable) as raised:
        Queue("orders").send("x")  # outside a platform: the SDK raises
    text = "\n".join(error_info("Handler", raised.value).traceback)
    assert "in test_the_sdk_frames_are_left_out" in text
    assert "nimbus/sdk/" not in text
