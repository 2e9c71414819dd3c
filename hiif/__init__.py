"""HIIF: arbitrary-scale image super-resolution (LIIF, LTE, HIIF)."""
