"""Capture: reading a document's text and proposing its search fields for a person to confirm.

``text`` extracts the text (e-invoice values, the PDF text layer, OCR through ``ocr``); the
pure parsers (``dates``, ``amounts``, ``parties``, ``doctype``, ``registration``) turn text
into candidate values; ``suggest`` ranks them into one suggestion per field. Nothing here
decides a field: under 電子帳簿保存法 the person who confirms a value is responsible for it
(NTA 電子帳簿保存法一問一答 on OCR as 入力支援), so every value is a *suggestion* with its
source and a confidence, and confirming it is the services layer's business.
"""
