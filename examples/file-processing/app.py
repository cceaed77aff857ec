"""File processing: a PDF uploaded to a bucket is read (with OCR for pages without text) and
the invoice fields found in it land in a table.

    nimbus up examples/file-processing
    curl -T invoice.pdf localhost:8080/documents/invoice.pdf
    curl localhost:8080/documents/invoice.pdf

Needs the examples' packages (pypdf, pypdfium2, pytesseract) and the `tesseract` program
(Debian: `apt-get install tesseract-ocr`).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import nimbus

app = nimbus.App("file-processing", max_body_bytes=20 * 1024 * 1024)

documents = app.bucket("documents")
extracted = app.table("extracted", key="name")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.pdf")
MAX_TEXT = 50_000  # characters of text kept beside the fields (a table item holds 400 KiB)


@app.http("PUT", "/documents/{name}", uses=[documents], memory_mb=256)
def upload(request: nimbus.Request) -> nimbus.Response:
    """Store the PDF in the bucket; its `created` event starts the extraction."""
    name = request.params["name"]
    if not NAME.fullmatch(name):
        raise nimbus.BadRequest("the name must be letters, digits, '.', '-' or '_', ending in .pdf")
    if not request.body.startswith(b"%PDF-"):
        raise nimbus.HTTPError(415, "the body is not a PDF document")
    info = documents.put(name, request.body, content_type="application/pdf")
    return nimbus.Response(
        {"name": name, "size": info.size, "etag": info.etag, "status": "processing"},
        status=202,
        headers={"location": f"/documents/{name}"},
    )


@app.on_bucket(
    documents,
    suffix=".pdf",
    uses=[documents, extracted],
    timeout=120,
    memory_mb=1024,
    environment={"OMP_THREAD_LIMIT": "1"},  # one Tesseract thread per instance
)
def extract(event: nimbus.ObjectEvent, context: nimbus.Context) -> None:
    """Read the PDF's text, find the fields, store them under the object's name."""
    # Imported here, not at the top: only this function needs the PDF libraries, so the HTTP
    # functions' cold starts do not pay for importing them.
    from extraction import PdfReadError, find_fields, read_pages

    result: dict[str, Any] = {"name": event.key, "etag": event.etag}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "document.pdf"
        try:
            documents.download_file(event.key, path)  # chunk by chunk, never whole in memory
        except nimbus.NotFound:
            context.logger.info("%s was deleted before it was read", event.key)
            return
        try:
            pages, ocr_pages = read_pages(path)
        except PdfReadError as error:  # the same bytes would fail again: no use retrying
            extracted.put({**result, "status": "failed", "error": f"unreadable PDF: {error}"})
            return
    text = "\n".join(pages)
    fields = find_fields(text)
    context.logger.info("%s: %d pages, OCR on %s: %s", event.key, len(pages), ocr_pages, fields)
    result |= {"status": "done", "pages": len(pages), "ocr_pages": ocr_pages, **fields}
    extracted.put({**result, "text": text[:MAX_TEXT]})


@app.http("GET", "/documents/{name}", uses=[extracted])
def get_document(request: nimbus.Request) -> dict[str, Any]:
    """What was extracted from a document (404 until its extraction has run)."""
    found = extracted.get(name=request.params["name"])
    if found is None:
        raise nimbus.HTTPError(404, f"no extraction of {request.params['name']!r} (yet)")
    return found.data
