"""`eventpipe up`: the whole pipeline on one machine.

One process serves HTTP (uvicorn, httptools, uvloop) and stores each acknowledged batch; a worker
process runs the workflows and reads file drops; a lake process writes the lake and applies
retention. SIGINT and SIGTERM stop it gracefully: the server stops accepting, answers the requests
it holds, then the worker finishes its current batch (and the lake process its current chunk).
Anything not finished stays pending and is finished at the next start.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import uvicorn

from eventpipe.adapters.local.request_log import segments
from eventpipe.core.errors import ConfigError
from eventpipe.localrun.app import LocalApp, is_loopback
from eventpipe.localrun.datadir_lock import UP, DataDirLock, holder_of
from eventpipe.localrun.demo import DemoStream, demo_write_key
from eventpipe.localrun.lake_process import LakeSupervisor, needed
from eventpipe.localrun.protocol import GuardedHttpToolsProtocol
from eventpipe.localrun.runtime import LocalRuntime
from eventpipe.localrun.worker import WorkerSupervisor

if TYPE_CHECKING:
    from types import FrameType

    from eventpipe.settings import Settings

log = logging.getLogger(__name__)
# `POST /events` runs on the event loop (localrun/log_acks.py); the threads answer the other routes
# and bodies over 64 KiB, which block on the request log's fsync: the more wait at once, the more share one
HANDLER_THREADS = 32
MAX_CONNECTIONS = 1000  # beyond it, uvicorn answers 503
KEEP_ALIVE_S = 5
BACKLOG = 2048
GRACEFUL_SHUTDOWN_S = 10


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything starts, so a port in use is a clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)  # from here on, clients queue until the server accepts them
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None
    return sock


def serve(settings: Settings, *, host: str, port: int, demo: bool = False) -> int:
    """Run until SIGINT or SIGTERM; returns the exit status (0 after a clean stop)."""
    if not is_loopback(host) and not settings.api_token:
        raise ConfigError(
            f"binding to {host} exposes the API: set EVENTPIPE_API_TOKEN (clients send it as a bearer token)"
        )
    run_lake = needed()  # a bad EVENTPIPE_LAKE is refused before anything starts
    lock = hold_data_dir(settings)
    try:
        sock = listen(host, port)
    except ConfigError:
        lock.release()
        raise
    port = sock.getsockname()[1]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/"
    lock.describe(UP, url)
    supervisor = WorkerSupervisor(settings)
    lake = LakeSupervisor(settings) if run_lake else None
    runtime = LocalRuntime(settings, defer_to=supervisor.wake, request_log=True)
    log_seq = supervisor.shared.log_seq
    log_seq.value = oldest_logged_seq(runtime)  # until the worker has read the log
    request_log = runtime.request_log
    assert request_log is not None
    runtime.requests_waiting = lambda: max(0, request_log.next_seq - log_seq.value)
    assert runtime.log_acks is not None
    runtime.log_acks.grouped_before = lambda: log_seq.value  # what the log holds past it is the backlog (429)
    executor = ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="eventpipe-http")
    app = LocalApp(runtime, executor=executor, token=settings.api_token)
    runtime.server_counters = lambda: {
        **app.stats.as_dict(),
        "worker": supervisor.as_dict(),
        **({"lake": lake.as_dict()} if lake else {}),
    }
    config = uvicorn_config(app)
    stream = None
    if demo:
        apps = runtime.apps
        stream = DemoStream(
            _reachable(host),
            port,
            token=settings.api_token,
            write_key=lambda: demo_write_key(settings.data_dir, apps.store, apps, runtime.clock.now_ms),
        )
    server = uvicorn.Server(config)
    received = _stop_on_signals(server)
    supervisor.start()
    if lake:
        lake.start()
    try:
        print(f"eventpipe: dashboard and API at {url} (data in {settings.data_dir}); Ctrl-C stops", flush=True)
        if stream:
            stream.start()
            print(
                f"eventpipe: sending a demo stream of about {stream.rate} events/s, dated up to a minute back"
                " (as devices that queue events send them), so the dashboard's lag shows about 30 s",
                flush=True,
            )
        server.run(sockets=[sock])
    finally:
        if stream:
            stream.stop()
        executor.shutdown(wait=True, cancel_futures=True)  # uvicorn has answered or dropped every request
        supervisor.ask_to_stop()
        if lake:
            lake.ask_to_stop()
            lake.join()
        supervisor.join()
        runtime.close()
        sock.close()
        lock.release()
    print("eventpipe: stopped; unfinished batches are finished at the next start", flush=True)
    # A stop asked for and done (Ctrl-C included) is a success: `make run` then ends quietly. Only a
    # second signal, which drops the requests still in flight, exits with the signal's status.
    return 128 + received[-1] if len(received) > 1 else 0


def uvicorn_config(app: LocalApp) -> uvicorn.Config:
    """How `eventpipe up` runs uvicorn (bench/http_inprocess.py drives the same protocol and app)."""
    return uvicorn.Config(
        app,
        http=GuardedHttpToolsProtocol,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        lifespan="off",
        # uvicorn would believe X-Forwarded-For from 127.0.0.1 and rewrite the peer address; the app
        # reads it itself, from EVENTPIPE_TRUSTED_PROXIES only (localrun/forwarded.py).
        proxy_headers=False,
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        access_log=False,
        log_level="warning",
    )


def oldest_logged_seq(runtime: LocalRuntime) -> int:
    """The first sequence number of the request log's oldest segment (what a crash left unread)."""
    assert runtime.request_log is not None
    found = segments(runtime.request_log.folder)
    return found[0].first_seq if found else runtime.request_log.next_seq


def hold_data_dir(settings: Settings) -> DataDirLock:
    """This data directory's lock, or a one-line refusal naming the process that holds it."""
    lock = DataDirLock.try_acquire(settings.data_dir, UP)
    if lock is None:
        holder = holder_of(settings.data_dir) or "another process"
        raise ConfigError(
            f"data directory {settings.data_dir} is in use by {holder}; stop it, or give this one another --data-dir"
        )
    return lock


def _reachable(host: str) -> str:
    """An address this machine reaches the server at (not the wildcard it may listen on)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)


def _stop_on_signals(server: uvicorn.Server) -> list[int]:
    """Handle SIGINT and SIGTERM from now on: the signals received, for the exit status.

    A signal before uvicorn runs makes it stop as soon as it starts. While it runs, its own handlers
    take over; it restores ours after and raises the signal again, which then only notes it, so
    the clean-up that follows is not cut short.
    """
    received: list[int] = []

    def stop(sig: int, frame: FrameType | None) -> Any:
        received.append(sig)
        server.should_exit = True
        server.force_exit = len(received) > 1  # a second signal: stop waiting for requests in flight

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    return received
