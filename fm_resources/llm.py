"""The `llm` resource: structured chat completions through litellm (any provider), cached in the lake, with retries.

Model strings are litellm's (openai/gpt-4o-mini, gemini/gemini-2.0-flash, ollama/llama3.2, hosted_vllm/<name> with
api_base ...); `template` means offline: nothing is ever called and callers use their deterministic writers.

Cache: a reply is identified by the sha256 of the canonical JSON of {model, prompt_version, messages, the sha256 of
each image actually sent, the output schema's JSON schema, temperature, max_tokens}. Validated replies live in the
lake at `_cache/llm/<key[:2]>/<key>.json`; a hit makes no network call and reports cost 0 for this run (the
original cost stays in the entry). Failures are never cached.

Retries: timeouts, 429 (honouring Retry-After), 5xx, connection errors and invalid output (not JSON, or not the
schema) are retried `max_retries` times with exponential backoff (backoff_s * 2**k, at most 30 s), all within
`total_timeout_s` (45 s) per call: each request gets at most `timeout_s` (20 s) and what is left of that, so a
hanging server costs a batch of `concurrency` clips under a minute, never minutes. Other 4xx fail at
once. litellm's and the OpenAI SDK's own retries are switched off (num_retries=0) so that the count here is the
number of requests sent. Exhausted or fatal errors raise LLMFailure with a short `reason`.

Cost and tokens: tokens from the response's usage; cost from litellm.completion_cost, None for models litellm has
no price for (e.g. a self-hosted openai/<name>). Both are summed over the attempts that got a reply.
"""

import base64
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pydantic
from dagster import ConfigurableResource

from fm_resources.lake import Lake
from fm_resources.settings import litellm_offline_prices, llm_api_base, secret


@functools.cache
def _litellm():
    """litellm, imported on first use: it takes ~3 s to import, which every `fm` command and every Dagster step
    process would otherwise pay even when no LLM is called."""
    litellm_offline_prices()  # never download litellm's price table
    import litellm

    litellm.suppress_debug_info = True  # no "Give Feedback / Get Help" banner on every provider error
    return litellm

def supports_vision(model: str) -> bool:
    """Whether litellm's model table says the model takes images (raises for models it does not know)."""
    return bool(_litellm().supports_vision(model=model))


log = logging.getLogger(__name__)

_sleep = time.sleep  # patched by tests
MAX_BACKOFF_S = 30.0
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


class LLMFailure(Exception):
    """A completion that failed for good: after all retries, or at once for errors a retry cannot fix."""

    def __init__(self, reason: str, attempts: int, detail: str = ""):
        super().__init__(f"{reason} after {attempts} attempt(s): {detail}")
        self.reason = reason
        self.attempts = attempts
        self.detail = detail


@dataclass
class LLMResult:
    value: pydantic.BaseModel | str  # the validated reply, or its raw text when no schema was asked for
    text: str
    tokens_in: int
    tokens_out: int
    cost_usd: float | None
    cached: bool
    attempts: int  # requests sent in this run (0 for a cache hit)
    model: str
    key: str


class _AttemptError(Exception):
    """One failed attempt: why, whether another attempt may help, and how long the server asked us to wait."""

    def __init__(self, reason: str, detail: str, retry: bool, wait_s: float | None = None):
        super().__init__(detail)
        self.reason, self.detail, self.retry, self.wait_s = reason, detail, retry, wait_s


def _classify(exc: Exception) -> tuple[str, bool]:
    """(reason, retryable) for an exception raised by _litellm().completion."""
    if isinstance(exc, _litellm().Timeout):  # before the status check: litellm gives it status 408
        return "timeout", True
    message = str(exc)
    # litellm's openai provider reports a refused connection and a missing key as InternalServerError (500)
    if isinstance(exc, _litellm().APIConnectionError) or "Connection error" in message:
        return "connection", True
    if "Missing credentials" in message:
        return "auth", False
    status = getattr(exc, "status_code", None)
    if status == 429:
        return "rate_limit", True
    if isinstance(status, int) and status >= 500:
        return "server_error", True
    if status in (401, 403):
        return "auth", False
    if status == 404:
        return "not_found", False
    return "bad_request", False


def _retry_after(exc: Exception) -> float | None:
    """Seconds from a Retry-After header (litellm keeps the provider's headers in `litellm_response_headers`)."""
    headers = getattr(exc, "litellm_response_headers", None) or {}
    try:
        return max(0.0, float(headers.get("retry-after")))
    except (TypeError, ValueError):  # absent, or an HTTP date
        return None


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse(text: str | None, schema: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    """The reply validated against the schema (```json fences tolerated); _AttemptError('invalid_output') if not."""
    stripped = (text or "").strip()
    fenced = _FENCE.match(stripped)
    try:
        return schema.model_validate_json(fenced.group(1) if fenced else stripped)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise _AttemptError("invalid_output", f"{first['type']} at {first['loc']}: {first['msg']}"[:300], True) from exc


class LLMResource(ConfigurableResource):
    """Structured chat completions through litellm with a lake-backed cache, retries and cost accounting."""

    model: str = "template"
    api_base: str | None = None
    api_key_env: str | None = "FM_LLM_API_KEY"
    temperature: float = 0.0
    max_tokens: int = 1200
    timeout_s: float = 20.0  # one request
    total_timeout_s: float = 45.0  # one call, all its attempts and waits: a hanging server costs at most this
    max_retries: int = 4
    backoff_s: float = 1.0
    concurrency: int = 4
    vision: bool = False
    frame_every_s: float = 0.5
    max_frames: int = 16
    frame_max_side: int = 512
    cache: bool = True

    @property
    def is_offline(self) -> bool:
        return self.model == "template"

    # -- public API ---------------------------------------------------------------------------------------
    def complete(self, lake: Lake, messages: list[dict], schema: type[pydantic.BaseModel] | None, prompt_version: str,
                 images: Sequence[bytes] = ()) -> LLMResult:
        """One validated structured reply (from the cache when possible). Raises LLMFailure. With schema=None the
        reply is the model's raw text (no response format; any text, even empty, is an answer), e.g. for scoring
        a model's answers strictly."""
        if self.is_offline:
            raise LLMFailure("offline", 0, "model is 'template'; no LLM is configured")
        frames = self._pick_frames(images) if self.vision else []
        key = self.cache_key(messages, schema, prompt_version, frames)
        cache_key = f"_cache/llm/{key[:2]}/{key}.json"
        if self.cache and lake.exists(cache_key):
            hit = self._from_cache(lake.read_json(cache_key), schema, key)
            if hit is not None:
                return hit
        result = self._call(self._request_messages(messages, schema, frames), schema, key)
        if self.cache:
            lake.write_json(cache_key, {
                "key": key, "model": self.model, "prompt_version": prompt_version, "text": result.text,
                "value": result.value.model_dump(mode="json") if schema else result.value,
                "tokens_in": result.tokens_in,
                "tokens_out": result.tokens_out, "cost_usd": result.cost_usd, "attempts": result.attempts,
                "created": time.time(),
            })
        return result

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """fn over items, at most `concurrency` at once (one after another in this thread when offline), results in
        input order; an exception is returned as the item's value (the caller records that item as failed), never
        raised."""
        def guarded(item: Any) -> Any:
            try:
                return fn(item)
            except Exception as exc:
                return exc

        if self.is_offline:
            # no request to wait for: the items' own work (rule-based questions, template captions) is Python and
            # numpy on small arrays, which threads only make fight over the GIL (4 threads took twice the time of
            # one on a 5-minute video's questions: BENCHMARKS.md, session 15)
            return [guarded(item) for item in items]
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="llm") as pool:
            return list(pool.map(guarded, items))

    def image_parts(self, jpegs: Iterable[bytes]) -> list[dict]:
        """OpenAI-style image_url content parts (base64 data URLs), which litellm translates for other providers."""
        return [{"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(j).decode()}}
                for j in jpegs]

    def cache_key(self, messages: list[dict], schema: type[pydantic.BaseModel] | None, prompt_version: str,
                  frames: Sequence[bytes] = ()) -> str:
        """sha256 of everything that determines the reply (frames: the images actually sent)."""
        return hashlib.sha256(_canonical({
            "model": self.model, "prompt_version": prompt_version, "messages": messages,
            "images": [hashlib.sha256(f).hexdigest() for f in frames], "schema": schema.model_json_schema() if schema else None,
            "temperature": self.temperature, "max_tokens": self.max_tokens,
        }).encode()).hexdigest()

    # -- internals ----------------------------------------------------------------------------------------
    def _pick_frames(self, images: Sequence[bytes]) -> list[bytes]:
        """At most max_frames images, evenly spaced over the sequence."""
        n = len(images)
        if n <= self.max_frames:
            return list(images)
        return [images[i * n // self.max_frames] for i in range(self.max_frames)]

    def _structured(self) -> bool:
        """Whether litellm knows the model takes a JSON schema; otherwise JSON mode plus the schema in the prompt."""
        return _litellm().supports_response_schema(model=self.model)

    def _response_format(self, schema: type[pydantic.BaseModel]) -> dict:
        if self._structured():
            return {"type": "json_schema",
                    "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema() if schema else None, "strict": False}}
        return {"type": "json_object"}

    def _request_messages(self, messages: list[dict], schema: type[pydantic.BaseModel] | None,
                          frames: list[bytes]) -> list[dict]:
        """A copy of the messages with the schema spelled out (json_object mode) and the frames attached."""
        out = [dict(m) for m in messages]
        if schema is not None and not self._structured():
            note = ("Reply with a single JSON object (no prose, no code fences) that matches this JSON schema:\n"
                    + json.dumps(schema.model_json_schema()))
            system = next((m for m in out if m.get("role") == "system"), None)
            if system is None:
                out.insert(0, {"role": "system", "content": note})
            else:
                system["content"] = f"{system['content']}\n\n{note}"
        if frames:
            last_user = next((m for m in reversed(out) if m.get("role") == "user"), None)
            if last_user is None:
                out.append(last_user := {"role": "user", "content": []})
            content = last_user["content"]
            text_parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
            last_user["content"] = text_parts + self.image_parts(frames)
        return out

    def _from_cache(self, entry: dict, schema: type[pydantic.BaseModel] | None, key: str) -> LLMResult | None:
        try:
            value = schema.model_validate(entry["value"]) if schema else str(entry["text"])
        except (KeyError, TypeError, pydantic.ValidationError):
            log.warning("ignoring unreadable LLM cache entry %s", key)
            return None
        return LLMResult(value=value, text=entry["text"], tokens_in=entry["tokens_in"],
                         tokens_out=entry["tokens_out"], cost_usd=0.0, cached=True, attempts=0, model=self.model,
                         key=key)

    def _send(self, messages: list[dict], response_format: dict | None, timeout_s: float | None = None) -> Any:
        """One request, with litellm's errors turned into _AttemptError."""
        try:
            return _litellm().completion(
                model=self.model, messages=messages, temperature=self.temperature, max_tokens=self.max_tokens,
                timeout=timeout_s or self.timeout_s, api_base=self.api_base or llm_api_base(),
                api_key=secret(self.api_key_env) if self.api_key_env else None,
                response_format=response_format, num_retries=0, drop_params=True,
            )
        except Exception as exc:
            reason, retry = _classify(exc)
            raise _AttemptError(reason, str(exc)[:500], retry,
                                _retry_after(exc) if reason == "rate_limit" else None) from exc

    def _call(self, messages: list[dict], schema: type[pydantic.BaseModel] | None, key: str) -> LLMResult:
        response_format = self._response_format(schema) if schema else None
        tokens_in = tokens_out = 0
        costs: list[float] = []
        attempt = 0
        deadline = time.monotonic() + self.total_timeout_s
        while True:
            attempt += 1
            try:
                left = deadline - time.monotonic()
                if left <= 0.05:
                    raise _AttemptError("deadline", f"no reply within total_timeout_s={self.total_timeout_s:g} s", False)
                resp = self._send(messages, response_format, min(self.timeout_s, left))
                tokens_in += resp.usage.prompt_tokens or 0
                tokens_out += resp.usage.completion_tokens or 0
                try:
                    costs.append(_litellm().completion_cost(completion_response=resp))
                except Exception:
                    pass
                text = resp.choices[0].message.content or ""
                value = _parse(text, schema) if schema else text
            except _AttemptError as err:
                if err.reason == "deadline":
                    raise LLMFailure(err.reason, attempt - 1, err.detail) from err
                if not err.retry or attempt > self.max_retries:
                    raise LLMFailure(err.reason, attempt, err.detail) from err
                wait = min(self.backoff_s * 2 ** (attempt - 1) if err.wait_s is None else err.wait_s, MAX_BACKOFF_S,
                           max(0.0, deadline - time.monotonic()))
                log.warning("%s: attempt %d failed (%s); retrying in %.2fs", self.model, attempt, err.reason, wait)
                _sleep(wait)
                continue
            return LLMResult(value=value, text=text, tokens_in=tokens_in, tokens_out=tokens_out,
                             cost_usd=sum(costs) if costs else None, cached=False, attempts=attempt,
                             model=self.model, key=key)
