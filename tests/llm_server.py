"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for tests (stdlib `http.server`, threaded).

    with start_server(lambda body: '{"overview": "ok", "bullets": []}') as server:
        server.script(Status(429, retry_after=0), Reply('{"overview": "x", "bullets": []}'))
        litellm.completion(model="openai/test", api_base=server.base_url, api_key="k", messages=[...])

Each request consumes the next scripted behaviour; when the script is empty the default responder (a callable from
the parsed request body to the reply text) answers. Every request is recorded (`server.requests`), and the server
tracks how many requests were in flight at once (`server.max_in_flight`).
"""

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Responder = Callable[[dict], str]


@dataclass(frozen=True)
class Reply:
    """A 200 chat completion whose message content is `content` (any text, valid JSON or not)."""

    content: str
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass(frozen=True)
class Status:
    """An HTTP error status with an OpenAI-style error body (and a Retry-After header when given)."""

    code: int
    retry_after: float | None = None
    message: str = "scripted error"


@dataclass(frozen=True)
class Delay:
    """Wait `seconds` (longer than the client's timeout, to provoke one), then answer with `then` or the default."""

    seconds: float
    then: Reply | Status | None = None


Behaviour = Reply | Status | Delay


@dataclass
class Recorded:
    path: str
    headers: Mapping[str, str]  # case-insensitive (http.client.HTTPMessage)
    body: dict


class LLMServer:
    def __init__(self, responder: Responder):
        self.responder = responder
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._script: deque[Behaviour] = deque()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> int:
        return len(self.requests)

    def script(self, *behaviours: Behaviour) -> None:
        """Queue behaviours, consumed one per request before the default responder takes over."""
        with self._lock:
            self._script.extend(behaviours)

    def start(self) -> "LLMServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- request handling (runs on the server's threads) -----------------------------------------------
    def _begin(self, path: str, headers: Mapping[str, str], body: dict) -> Behaviour | None:
        with self._lock:
            self.requests.append(Recorded(path, headers, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self._script.popleft() if self._script else None

    def _end(self) -> None:
        with self._lock:
            self.in_flight -= 1


def completion_json(body: dict, content: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """The JSON OpenAI returns for a non-streaming chat completion."""
    return {
        "id": f"chatcmpl-test-{time.monotonic_ns()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "test"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def _handler_for(server: LLMServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def do_POST(self) -> None:
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                return
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            behaviour = server._begin(self.path, self.headers, body)  # HTTP headers: case-insensitive
            try:
                if isinstance(behaviour, Delay):
                    time.sleep(behaviour.seconds)
                    behaviour = behaviour.then
                if behaviour is None:
                    behaviour = Reply(server.responder(body))
                if isinstance(behaviour, Status):
                    extra = {"Retry-After": f"{behaviour.retry_after:g}"} if behaviour.retry_after is not None else {}
                    self._send(behaviour.code, {"error": {"message": behaviour.message, "type": "scripted",
                                                          "code": str(behaviour.code)}}, extra)
                else:
                    self._send(200, completion_json(body, behaviour.content, behaviour.prompt_tokens,
                                                    behaviour.completion_tokens))
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout) before the reply
            finally:
                server._end()

        def _send(self, code: int, payload: dict, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def start_server(responder: Responder = lambda body: "{}") -> Iterator[LLMServer]:
    """Run an LLMServer for the duration of a `with` block (or a pytest fixture: `with start_server() as s: yield s`)."""
    with LLMServer(responder) as server:
        yield server
