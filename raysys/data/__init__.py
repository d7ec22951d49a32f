"""Row schemas and parquet/JSON I/O for every stage."""
