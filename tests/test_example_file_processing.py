"""examples/file-processing end to end: PDFs uploaded over HTTP land in a bucket, its object
events run the extraction (pypdf; Tesseract OCR for a scanned page), the fields land in a table.

The PDFs are made here, by the example's samples.py: one with a text layer, one image only.
Outside CI a missing `tesseract` skips the OCR test; with CI set it fails it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from conftest import Platform

EXAMPLE = Path(__file__).parent.parent / "examples" / "file-processing"
NO_TESSERACT = "the tesseract program is not installed (Debian: apt-get install tesseract-ocr)"

Launch = Callable[..., Platform]


def load_samples() -> ModuleType:
    spec = importlib.util.spec_from_file_location("file_processing_samples", EXAMPLE / "samples.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


samples = load_samples()


def require_tesseract() -> None:
    if shutil.which("tesseract") is None:
        if os.environ.get("CI"):
            pytest.fail(NO_TESSERACT)
        pytest.skip(NO_TESSERACT)


@pytest.fixture
def platform(launch: Launch) -> Platform:
    return launch(EXAMPLE, "--no-reload")


def upload(platform: Platform, name: str, pdf: bytes) -> dict[str, Any]:
    response = platform.http.put(
        f"/documents/{name}", content=pdf, headers={"content-type": "application/pdf"}
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/documents/{name}"
    accepted: dict[str, Any] = response.json()
    assert accepted["size"] == len(pdf)
    return accepted


def extraction(platform: Platform, name: str) -> dict[str, Any] | None:
    response = platform.http.get(f"/documents/{name}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def wait_for_extraction(platform: Platform, name: str) -> dict[str, Any]:
    found: dict[str, Any] = platform.wait_for(
        lambda: extraction(platform, name), f"the extraction of {name}"
    )
    return found


def test_a_pdf_with_a_text_layer(platform: Platform) -> None:
    accepted = upload(platform, "acme.pdf", samples.text_pdf(samples.TEXT_INVOICE))
    found = wait_for_extraction(platform, "acme.pdf")
    assert found == {
        "name": "acme.pdf",
        "etag": accepted["etag"],
        "status": "done",
        "pages": 1,
        "ocr_pages": [],
        "invoice_number": "INV-2024-0042",
        "date": "2024-03-15",
        "total": "1234.50",  # the total, not the subtotal
        "currency": "EUR",
        "text": found["text"],
    }
    assert "ACME Supplies Ltd" in found["text"]


def test_a_scanned_pdf_is_read_by_ocr(platform: Platform) -> None:
    require_tesseract()
    accepted = upload(platform, "northwind-scan.pdf", samples.scanned_pdf(samples.SCANNED_INVOICE))
    found = wait_for_extraction(platform, "northwind-scan.pdf")
    assert found["status"] == "done", found
    assert found["etag"] == accepted["etag"]
    assert found["pages"] == 1
    assert found["ocr_pages"] == [1]
    assert {key: found[key] for key in ("invoice_number", "date", "total", "currency")} == {
        "invoice_number": "NW-7781",
        "date": "2024-04-03",
        "total": "960.00",
        "currency": "USD",
    }
    assert "Northwind Traders" in found["text"]


def test_refused_and_unreadable_uploads(platform: Platform) -> None:
    pdf = samples.text_pdf(samples.TEXT_INVOICE)
    for name in ("notes.txt", ".hidden.pdf", "a%20b.pdf"):
        response = platform.http.put(f"/documents/{name}", content=pdf)
        assert response.status_code == 400, (name, response.text)
        assert "the name must be" in response.json()["error"]
    not_pdf = platform.http.put("/documents/fake.pdf", content=b"GIF89a...")
    assert not_pdf.status_code == 415
    assert not_pdf.json() == {"error": "the body is not a PDF document"}

    # Starts like a PDF, is not one: recorded as failed rather than retried.
    upload(platform, "broken.pdf", b"%PDF-1.7\nthis is not a PDF after all\n")
    broken = wait_for_extraction(platform, "broken.pdf")
    assert broken["status"] == "failed"
    assert broken["error"].startswith("unreadable PDF: ")

    # Nothing refused reached the bucket, so nothing else was extracted.
    upload(platform, "last.pdf", pdf)
    wait_for_extraction(platform, "last.pdf")
    for name in ("notes.txt", "fake.pdf"):
        assert extraction(platform, name) is None
    invocations = platform.cli_json("invocations", "extract")
    assert len(invocations) == 2
    assert {record["outcome"] for record in invocations} == {"success"}
    assert platform.cli_json("dlq", "ls") == []
