-- Tokens and cost per model and prompt (every call that was paid for: the response cache in the lake means a
-- repeated call is free), and how the captions of the lake were written (template, LLM, cached, failed).
SELECT 'paid calls' AS what, model, prompt_version, count(*) AS calls,
       sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out,
       round(sum(cost_usd), 4) AS cost_usd, count(*) FILTER (WHERE cost_usd IS NULL) AS calls_without_price,
       round(avg(attempts), 2) AS mean_attempts
FROM llm_calls
GROUP BY ALL
UNION ALL
SELECT 'captions', writer, prompt_version, count(*), sum(tokens_in), sum(tokens_out), round(sum(cost_usd), 4),
       count(*) FILTER (WHERE status <> 'ok'), round(avg(attempts), 2)
FROM captions
GROUP BY ALL
ORDER BY 1, 2, 3
