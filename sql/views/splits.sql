-- One row per video: its split (train / val / test), from a hash of the video id's content part; one file.
CREATE OR REPLACE VIEW splits AS
SELECT * FROM {parquet};
