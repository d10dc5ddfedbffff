"""The command line: run (Socket Mode), serve (HTTP), migrate, demo."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from bot.config import ConfigError, Settings, load_settings, require_slack
from bot.logs import configure_logging

log = logging.getLogger("bot")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"crowdcare: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())
    command = args.command or ("run" if settings.slack_configured else "demo")
    try:
        if command == "migrate":
            return _migrate(settings)
        if command == "demo":
            from bot.demo import run_demo

            return run_demo(quiet=args.quiet if "quiet" in args else False)
        require_slack(settings, socket_mode=command == "run")
        if command == "serve":
            return _serve(settings, args.host, args.port)
        return _run_socket_mode(settings)
    except ConfigError as exc:
        print(f"crowdcare: configuration error: {exc}", file=sys.stderr)
        return 2


COMMANDS = {
    "run": "Connect to Slack with Socket Mode (needs SLACK_BOT_TOKEN and SLACK_APP_TOKEN); "
    "no public URL needed.",
    "serve": "Serve Slack's HTTP requests on POST /slack/events and GET /healthz with waitress "
    "(needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET).",
    "migrate": "Apply database migrations to DATABASE_URL (default sqlite:///crowdcare.db).",
    "demo": "Run the whole loop on this machine against stand-in Slack and X servers; "
    "no accounts needed.",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="crowdcare: answer customers on X from Slack, as a crowd. With no command, "
        "runs in Socket Mode when SLACK_BOT_TOKEN is set, else the demo.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub = commands.add_parser(name, help=text, description=text)
        if name == "serve":
            sub.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0)")  # noqa: S104
            sub.add_argument("--port", type=_port, default=3000, help="port to bind (default 3000)")
        if name == "demo":
            sub.add_argument("--quiet", action="store_true", help="print only the summary")
    return parser


def _port(raw: str) -> int:
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a port number (0-65535)")
    return int(raw)


def _migrate(settings: Settings) -> int:
    from storage.db import make_engine
    from storage.migrate import upgrade

    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    log.info("Database is up to date.")
    return 0


def _serve(settings: Settings, host: str, port: int) -> int:
    from bot.app import Crowdcare
    from bot.server import make_server, stop_server

    care = Crowdcare(settings)
    server = make_server(care.http_app(), host, port)
    care.start()
    _on_stop_signal(_interrupt)
    log.info("crowdcare is serving Slack on http://%s:%s/slack/events", host, server.effective_port)
    try:
        server.run()
    except _Stopping:
        pass
    finally:
        stop_server(server)
        care.stop()
        log.info("crowdcare stopped.")
    return 0


class _Stopping(SystemExit):
    """Raised from the signal handler to leave the server's loop.

    A SystemExit, because waitress's event loop swallows ordinary exceptions raised while it
    handles a connection (and would keep serving), but re-raises SystemExit.
    """


def _interrupt() -> None:
    raise _Stopping


def _run_socket_mode(settings: Settings) -> int:
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError, SlackClientError

    from bot.app import Crowdcare

    care = Crowdcare(settings)
    handler = SocketModeHandler(care.bolt, settings.slack_app_token)
    stopped = threading.Event()
    _on_stop_signal(stopped.set)
    try:
        handler.connect()  # type: ignore[no-untyped-call]
    except (SlackApiError, SlackClientError, OSError) as exc:
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
        print(
            f"crowdcare: Slack refused the Socket Mode connection ({reason}). Check that "
            "SLACK_APP_TOKEN is an app-level token with connections:write and that Socket Mode "
            "is enabled for the app.",
            file=sys.stderr,
        )
        care.stop()
        return 1
    care.start()
    log.info("crowdcare is connected to Slack (Socket Mode). Ctrl-C stops it.")
    stopped.wait()
    handler.close()  # type: ignore[no-untyped-call]
    care.stop()
    log.info("crowdcare stopped.")
    return 0


def _on_stop_signal(stop: Callable[[], None]) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s; stopping.", signal.Signals(signum).name)
        stop()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
