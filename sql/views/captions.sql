-- One row per kept clip: the caption (status 'failed' with the error when the LLM gave up), writer, tokens, cost.
CREATE OR REPLACE VIEW captions AS
SELECT * FROM {parquet};
