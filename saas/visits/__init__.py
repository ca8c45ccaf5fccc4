"""Visits kept as history (来院履歴): from a CSV import, the desk, or a form; 最終来院日 follows them."""
