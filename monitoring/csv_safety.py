"""Cells that a spreadsheet would run as a formula are written as text."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """Prefix a formula-like text cell with ' ; numbers (``-1.5``) stay as they are."""
    if not value or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value
