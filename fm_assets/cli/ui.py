"""`fm ui`: dagster dev on this project and the instance in FM_HOME, bound to 127.0.0.1, with a guard against DNS
rebinding: the webserver answers only requests whose Host (and Origin, when a browser sends one) names this
machine's loopback or the host it was bound to (plus FM_UI_ALLOWED_HOSTS); anything else gets 403. A web page
on another site can then neither read the UI nor launch runs through the browser of someone who has it open.
For access from other machines, put an authenticating reverse proxy in front (README: "fm ui behind a proxy").

How: `fm ui` starts `python -m fm_assets.cli.ui dev ...`, which runs Dagster's own `dagster dev` with its
webserver process started as `python -m fm_assets.cli.ui webserver ...`: Dagster's webserver with its ASGI app
wrapped by `host_guard`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

from fm_resources.instance import dagster_instance

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")


def cmd_ui(args) -> int:
    dagster_instance()
    workspace = Path(__file__).resolve().parents[2] / "workspace.yaml"  # the source tree's (editable install)
    where = ["-w", str(workspace)] if workspace.is_file() else ["-m", "fm_assets.definitions"]
    cmd = [sys.executable, "-m", "fm_assets.cli.ui", "dev", *where, "-h", args.host, "-p", str(args.port)]
    return subprocess.call(cmd)  # inherits this process's environment, DAGSTER_HOME included


def _hostname(value: str) -> str:
    """The host part of a Host header or an Origin URL, lower-case, without the port."""
    if "://" in value:
        return (urlsplit(value).hostname or "").lower()
    if value.startswith("["):
        return value[: value.find("]") + 1].lower()
    return value.rsplit(":", 1)[0].lower() if value.count(":") == 1 else value.lower()


def allowed_hosts(bound: str | None) -> set[str]:
    from fm_resources.settings import ui_allowed_hosts

    hosts = set(LOOPBACK) | set(ui_allowed_hosts())
    if bound and bound not in ("0.0.0.0", "::"):
        hosts.add(bound.lower())
    return hosts


def host_guard(app, allowed: set[str]):
    """An ASGI wrapper: HTTP requests and websockets whose Host or Origin is not in `allowed` get 403."""

    async def guarded(scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            host, origin = headers.get("host", ""), headers.get("origin")
            bad = _hostname(host) not in allowed or (origin not in (None, "null") and _hostname(origin) not in allowed)
            if bad:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4403})
                    return
                body = b"fm ui: forbidden host or origin (DNS rebinding guard; see FM_UI_ALLOWED_HOSTS)\n"
                await send({"type": "http.response.start", "status": 403,
                            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


def _webserver(argv: list[str]) -> None:
    """Dagster's webserver (dagster_webserver.cli), its app wrapped by host_guard."""
    import dagster_webserver.cli as web

    bound = argv[argv.index("--host") + 1] if "--host" in argv else "127.0.0.1"
    make = web.create_app_from_workspace_process_context
    web.create_app_from_workspace_process_context = lambda *a, **kw: host_guard(make(*a, **kw), allowed_hosts(bound))
    sys.argv = ["dagster-webserver", *argv]
    web.main()


def _dev(argv: list[str]) -> None:
    """`dagster dev`, its webserver process started through `_webserver`."""
    import dagster._cli.dev as dev

    spawn = dev.open_ipc_subprocess

    def open_ipc_subprocess(parts, *a, **kw):
        if list(parts[1:3]) == ["-m", "dagster_webserver"]:
            parts = [parts[0], "-m", "fm_assets.cli.ui", "webserver", *parts[3:]]
        return spawn(parts, *a, **kw)

    dev.open_ipc_subprocess = open_ipc_subprocess
    from dagster._cli import main

    sys.argv = ["dagster", "dev", *argv]
    main()


if __name__ == "__main__":
    {"dev": _dev, "webserver": _webserver}[sys.argv[1]](sys.argv[2:])
