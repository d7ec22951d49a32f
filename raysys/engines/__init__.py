"""Generation engines; each produces the same output columns (see `hf.OUTPUT_COLUMNS`)."""
