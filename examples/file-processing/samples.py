"""Write two sample invoices to try the example with: one with a text layer, one scanned
(an image only, so its text is found by OCR).

    python examples/file-processing/samples.py /tmp/invoices
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont


def text_pdf(lines: list[str]) -> bytes:
    """A one-page PDF whose lines are real text (what an accounting program writes)."""
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=14)
    for line in lines:
        pdf.cell(text=line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def scanned_pdf(lines: list[str]) -> bytes:
    """A one-page PDF that is only a picture of the lines (what a scanner writes)."""
    page = Image.new("L", (1240, 1754), color=255)  # A4 at 150 dpi, white
    draw = ImageDraw.Draw(page)
    font = ImageFont.load_default(size=36)
    for number, line in enumerate(lines):
        draw.text((120, 150 + number * 64), line, fill=0, font=font)
    out = io.BytesIO()
    page.save(out, format="PDF", resolution=150)
    return out.getvalue()


TEXT_INVOICE = [
    "ACME Supplies Ltd, 1 Market Street, Springfield",
    "Invoice number: INV-2024-0042",
    "Date: 2024-03-15",
    "2 x Widget                 19.98",
    "1 x Gadget              1,017.41",
    "Subtotal: EUR 1,037.39",
    "VAT 19%: EUR 197.11",
    "Total: EUR 1,234.50",
]
SCANNED_INVOICE = [
    "Northwind Traders",
    "Invoice No. NW-7781",
    "Date: 3 April 2024",
    "Consulting, 12 hours      960.00",
    "Total due: USD 960.00",
]

if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "invoice-text.pdf").write_bytes(text_pdf(TEXT_INVOICE))
    (folder / "invoice-scan.pdf").write_bytes(scanned_pdf(SCANNED_INVOICE))
    print(f"wrote {folder / 'invoice-text.pdf'} and {folder / 'invoice-scan.pdf'}")
