"""Analysis over batches of columns (polars): the message table as vectorized linear-time patterns, facts as columns."""
