"""Data in and out: dataset sources (readers of the raw formats), prepared datasets, HDF5 I/O
with provenance and content hashes, and the export of condensed sets as image folders."""
