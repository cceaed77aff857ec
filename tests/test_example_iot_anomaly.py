"""examples/iot-anomaly end to end: machines publish telemetry to a real Mosquitto, the detector
applies Grubbs' test against each machine's sliding window, and the one anomalous reading
becomes one repair request, one work order and one ticket on the service department's board.
The statistics are checked against published critical values."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import Platform, start_platform
from mqtt_broker import Device, Mosquitto

EXAMPLE = Path(__file__).parent.parent / "examples" / "iot-anomaly"


def load_grubbs() -> ModuleType:
    spec = importlib.util.spec_from_file_location("iot_anomaly_grubbs", EXAMPLE / "grubbs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


grubbs = load_grubbs()

MACHINES = ["press-1", "press-2", "press-3"]
BASELINE = 10  # the example's MIN_WINDOW: readings before it are not tested


# NIST/SEMATECH e-Handbook, Grubbs' test; two-sided critical values (Grubbs 1969, table 1)
@pytest.mark.parametrize(
    ("n", "alpha", "expected"),
    [(10, 0.05, 2.290), (20, 0.05, 2.709), (30, 0.05, 2.908), (10, 0.01, 2.482), (25, 0.01, 3.135)],
)
def test_critical_values_match_the_published_tables(n: int, alpha: float, expected: float) -> None:
    assert math.isclose(grubbs.critical_value(n, alpha), expected, abs_tol=0.001)


def test_student_t_quantiles_match_the_tables() -> None:
    assert math.isclose(grubbs.student_t_quantile(0.025, 10), 2.228, abs_tol=0.001)
    assert math.isclose(grubbs.student_t_quantile(0.005, 3), 5.841, abs_tol=0.001)


def test_a_spike_is_an_outlier_and_a_usual_value_is_not() -> None:
    window = [70.0 + 0.3 * math.sin(k) for k in range(20)]
    assert grubbs.check_reading(window, 74.0, 0.01).outlier
    assert not grubbs.check_reading(window, 70.2, 0.01).outlier
    assert not grubbs.check_reading([70.0] * 20, 70.0, 0.01).outlier


def reading(machine: int, k: int) -> dict[str, float]:
    """Steady telemetry: each machine at its own level, with a little regular variation."""
    return {
        "temperature": round(60.0 + 5 * machine + 0.4 * math.sin(1.7 * k), 3),
        "vibration": round(0.30 + 0.02 * math.cos(2.3 * k), 4),
    }


@pytest.fixture
def platform(tmp_path: Path, broker: Mosquitto) -> Iterator[Platform]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("IOT_ANOMALY_MQTT_URL", broker.url)
        running = start_platform(EXAMPLE, tmp_path / "data", "--no-reload")
    yield running
    running.stop()
    running.assert_no_loop_errors()


def window_sizes(platform: Platform, machine: str) -> dict[str, int]:
    response = platform.http.get(f"/machines/{machine}")
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {metric: len(values) for metric, values in response.json()["readings"].items()}


def work_orders(platform: Platform) -> list[dict[str, Any]]:
    response = platform.http.get("/work-orders")
    assert response.status_code == 200, response.text
    orders: list[dict[str, Any]] = response.json()
    return orders


def test_an_anomalous_reading_becomes_one_work_order_and_one_ticket(
    platform: Platform, broker: Mosquitto
) -> None:
    floor, board = Device(broker, "floor"), Device(broker, "service-board")
    try:
        board.subscribe("service/tickets/#")

        def publish(machine: str, values: dict[str, float]) -> None:
            floor.publish(f"factory/{machine}/telemetry", json.dumps(values))

        def windows_hold(sizes: dict[str, dict[str, int]]) -> bool:
            return all(window_sizes(platform, machine) == want for machine, want in sizes.items())

        # a probe machine until the detector is subscribed (before, readings go nowhere)
        platform.wait_for(
            lambda: publish("probe", reading(0, 0)) or window_sizes(platform, "probe"),
            "the detector to be subscribed",
        )
        for k in range(BASELINE + 2):  # the last two are tested, and pass
            for number, machine in enumerate(MACHINES):
                publish(machine, reading(number, k))
        full = {"temperature": BASELINE + 2, "vibration": BASELINE + 2}
        platform.wait_for(lambda: windows_hold(dict.fromkeys(MACHINES, full)), "the baseline")
        assert work_orders(platform) == []

        spike = {**reading(1, BASELINE + 2), "temperature": 95.0}
        publish("press-1", reading(0, BASELINE + 2))
        publish("press-2", spike)
        publish("press-3", reading(2, BASELINE + 2))
        grown = {"temperature": BASELINE + 3, "vibration": BASELINE + 3}
        after = {"press-1": grown, "press-3": grown}
        after["press-2"] = {"temperature": BASELINE + 2, "vibration": BASELINE + 3}  # spike out
        platform.wait_for(lambda: windows_hold(after), "the readings to be tested")
        [order] = platform.wait_for(lambda: work_orders(platform), "the work order")
        assert (order["machine"], order["metric"], order["value"]) == (
            "press-2",
            "temperature",
            95.0,
        )
        assert order["status"] == "open"
        assert order["grubbs_g"] > order["critical"] > 2
        assert abs(order["window_mean"] - 65.0) < 1
        platform.wait_for(board.messages, "the ticket on the board")
        [ticket] = board.messages()
        assert ticket.topic == "service/tickets/press-2"
        assert json.loads(ticket.payload) == order
        publish("press-2", reading(1, BASELINE + 3))  # back to normal: no new order
        after["press-2"] = {"temperature": BASELINE + 3, "vibration": BASELINE + 4}
        platform.wait_for(lambda: windows_hold(after), "the last reading")
        assert work_orders(platform) == [order]
    finally:
        floor.close()
        board.close()
