// data pipeline.
