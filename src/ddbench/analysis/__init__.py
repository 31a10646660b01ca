"""From results to conclusions: quality metrics of condensed sets, tables, figures, and the
provenance and integrity check of a results tree (`verify`)."""
