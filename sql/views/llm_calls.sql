-- files: _cache/llm/*/*.json
-- One row per LLM call that was paid for (the lake's response cache: a cached reply is never paid twice):
-- model, prompt version (caption_v1 / qa_v1 ...), tokens, cost in USD (null for models litellm has no price for).
CREATE OR REPLACE VIEW llm_calls AS
SELECT key, model, prompt_version, tokens_in, tokens_out, cost_usd, attempts, to_timestamp(created) AS created
FROM read_json({files}, columns = {key: 'VARCHAR', model: 'VARCHAR', prompt_version: 'VARCHAR', tokens_in: 'BIGINT',
               tokens_out: 'BIGINT', cost_usd: 'DOUBLE', attempts: 'INTEGER', created: 'DOUBLE'});
