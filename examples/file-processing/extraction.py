"""Reading a PDF: its text layer with pypdf, Tesseract OCR for the pages that have none, and
the invoice fields found in the text with regular expressions."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2
import pytesseract
from pypdf.errors import PdfReadError

__all__ = ["PdfReadError", "find_fields", "read_pages"]

OCR_DPI = 300
INVOICE_NUMBER = re.compile(r"invoice\s*(?:number|no\.?|#)\s*[:#]?\s*([A-Z0-9][A-Z0-9/-]*)", re.I)
DATE = re.compile(r"\bdate\s*:?\s*(\d{4}-\d{2}-\d{2}|\d{1,2} [A-Za-z]+ \d{4})", re.I)
TOTAL = re.compile(
    r"\btotal(?: due)?\s*:?\s*([A-Z]{3}|[$€£])?\s*(\d{1,3}(?:,\d{3})*(?:\.\d{2})?)\b", re.I
)
CURRENCIES = {"$": "USD", "€": "EUR", "£": "GBP"}


def read_pages(path: Path) -> tuple[list[str], list[int]]:
    """The text of each page, and the numbers (from 1) of the pages that needed OCR."""
    texts, ocr_pages = [], []
    for number, page in enumerate(pypdf.PdfReader(path).pages, start=1):
        text = page.extract_text().strip()
        if not text:  # no text layer: a scanned page
            text = ocr(path, number).strip()
            ocr_pages.append(number)
        texts.append(text)
    return texts, ocr_pages


def ocr(path: Path, number: int) -> str:
    """Render page `number` as an image and read it with Tesseract."""
    pdf = pypdfium2.PdfDocument(path)
    try:
        image = pdf[number - 1].render(scale=OCR_DPI / 72).to_pil()
    finally:
        pdf.close()
    text: str = pytesseract.image_to_string(image)
    return text


def find_fields(text: str) -> dict[str, Any]:
    """Invoice number, date (ISO) and total (a decimal string, and its currency) found in the
    text; None for each one that is not."""
    number = INVOICE_NUMBER.search(text)
    found_date = DATE.search(text)
    totals = TOTAL.findall(text)  # the last: a grand total comes after any subtotal
    currency, amount = totals[-1] if totals else ("", "")
    return {
        "invoice_number": number.group(1) if number else None,
        "date": parse_date(found_date.group(1)) if found_date else None,
        "total": amount.replace(",", "") or None,
        "currency": CURRENCIES.get(currency, currency) or None,
    }


def parse_date(text: str) -> str | None:
    """`2024-03-15`, `15 March 2024` or `15 Mar 2024` as `2024-03-15`."""
    for form in ("%Y-%m-%d", "%d %B %Y", "%d %b %Y"):
        try:
            return datetime.strptime(text, form).date().isoformat()
        except ValueError:
            continue
    return None
