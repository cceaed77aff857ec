"""The admin API refuses bad input with a clear error and changes nothing."""

from __future__ import annotations

from conftest import Platform


def test_deploying_a_bad_spec_is_refused_and_changes_nothing(basic: Platform) -> None:
    before = basic.http.get("/_nimbus/spec").json()
    for body in (b"{nope", b"[]", b'{"name": "x"}', b'{"name": "x", "root": "/", "functions": 3}'):
        response = basic.http.put("/_nimbus/spec", content=body)
        assert response.status_code == 400, body
        assert response.json()["error"].startswith("spec: ")
        assert basic.http.post("/_nimbus/plan", content=body).status_code == 400
    assert basic.http.get("/_nimbus/spec").json() == before
    assert basic.invoke("pid")["outcome"] == "success"


def test_bad_query_parameters_are_400(basic: Platform) -> None:
    for path in (
        "/_nimbus/invocations?limit=abc",
        "/_nimbus/invocations?limit=0",
        "/_nimbus/logs?after=-1",
        "/_nimbus/dlq?limit=100000",
    ):
        response = basic.http.get(path)
        assert response.status_code == 400, path
        assert "error" in response.json()


def test_unknown_things_are_404(basic: Platform) -> None:
    assert basic.http.get("/_nimbus/nothing").status_code == 404
    assert basic.http.post("/_nimbus/functions/nope/invoke").status_code == 404
    assert basic.http.get("/_nimbus/dlq/nope").status_code == 404
    assert basic.http.post("/_nimbus/dlq/nope/redrive").status_code == 404


def test_invoke_with_a_non_json_event_is_400(basic: Platform) -> None:
    response = basic.http.post("/_nimbus/functions/echo/invoke", content=b"\xff\xfe")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_health_names_the_app(basic: Platform) -> None:
    assert basic.http.get("/_nimbus/health").json() == {"status": "ok", "app": "basic"}
