"""Commands that serve a storage until stopped: ``dashboard`` (optuna-dashboard for people)
and ``storage-proxy`` (Optuna's gRPC storage proxy for workers)."""

from __future__ import annotations

import argparse

from lstm_tune.cli.command import EXIT_OK, Command, say, warning
from lstm_tune.cli.env import STORAGE_ENV, STUDIES_DIR, given_storage, resolve_artifact_dir
from lstm_tune.cli.options import add_artifact_dir, add_storage, positive_int
from lstm_tune.storages import DEFAULT_PROXY_PORT, DEFAULT_PROXY_THREADS

__all__ = ["Dashboard", "StorageProxy"]

DEFAULT_DASHBOARD_PORT = 8080


class Dashboard(Command):
    """``lstm-tune dashboard``: optuna-dashboard for a storage, until interrupted."""

    name = "dashboard"
    help = "serve optuna-dashboard for a storage"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The storage, where to listen, and where the trials' artifacts are."""
        add_storage(parser, default=None)
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="address to bind (default 127.0.0.1; 0.0.0.0 opens it up)",
        )
        parser.add_argument(
            "--port",
            type=int,
            default=DEFAULT_DASHBOARD_PORT,
            help=f"port (default {DEFAULT_DASHBOARD_PORT}; 0 picks a free one)",
        )
        add_artifact_dir(parser, meaning="trial artifacts", study_file=False)

    def run(self, args: argparse.Namespace) -> int:
        """Serve the dashboard; say where, and warn when it is reachable from elsewhere."""
        from lstm_tune.errors import ConfigError
        from lstm_tune.results.dashboard import (
            LOOPBACK_HOSTS,
            dashboard_url,
            make_dashboard_server,
        )
        from lstm_tune.storages import redact_url

        storage = given_storage(args.storage)
        if not storage:
            found = sorted(STUDIES_DIR.glob("*.db"))
            hint = "; found here: " + ", ".join(f"sqlite:///{p}" for p in found) if found else ""
            raise ConfigError(
                f"no storage given: pass --storage URL (e.g. sqlite:///studies/imdb.db) "
                f"or set ${STORAGE_ENV}{hint}"
            )
        artifact_dir = resolve_artifact_dir(args.artifact_dir)
        server = make_dashboard_server(
            storage, host=args.host, port=args.port, artifact_dir=artifact_dir
        )
        if args.host not in LOOPBACK_HOSTS:
            warning(
                f"optuna-dashboard has no login; anyone who reaches "
                f"{args.host}:{server.server_port} can rename or delete studies"
            )
        say(
            f"optuna-dashboard for {redact_url(storage)} (artifacts: {artifact_dir}) at "
            f"{dashboard_url(server, args.host)} ; Ctrl-C stops it"
        )
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return EXIT_OK


class StorageProxy(Command):
    """``lstm-tune storage-proxy``: a database served to workers over Optuna's gRPC proxy."""

    name = "storage-proxy"
    help = "serve the storage to workers over Optuna's gRPC proxy"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The database, where to listen, and how many calls to serve at once."""
        add_storage(
            parser, default=None, meaning="the database's URL", note="; workers use grpc://"
        )
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
        )
        parser.add_argument(
            "--port",
            type=positive_int,
            default=DEFAULT_PROXY_PORT,
            help=f"port (default {DEFAULT_PROXY_PORT})",
        )
        parser.add_argument(
            "--threads",
            type=positive_int,
            default=DEFAULT_PROXY_THREADS,
            help="gRPC calls served at once, i.e. the most database connections in use "
            f"(default {DEFAULT_PROXY_THREADS})",
        )

    def run(self, args: argparse.Namespace) -> int:
        """Serve until stopped; the proxy's log takes the sweeper's re-queue lines."""
        import logging

        from lstm_tune.errors import ConfigError
        from lstm_tune.storages.proxy import serve_proxy

        storage = given_storage(args.storage)
        if not storage:
            raise ConfigError(
                f"no storage given: pass --storage URL (e.g. postgresql+psycopg://user@db/optuna) "
                f"or set ${STORAGE_ENV}"
            )
        # The sweeper's "failed and re-queued" lines go to the proxy's log.
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
        serve_proxy(storage, host=args.host, port=args.port, threads=args.threads, on_ready=say)
        return EXIT_OK
