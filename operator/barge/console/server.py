"""`barge console`: its flags, and serving the app."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os

import kubernetes
from aiohttp import web

from barge.console.access import Access, base_configuration, is_loopback
from barge.console.app import build_app
from barge.console.store import Store, wait_synced

log = logging.getLogger("barge.console")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=os.environ.get("BARGE_CONSOLE_ADDRESS", "127.0.0.1"),
                        help="address to listen on (default 127.0.0.1); any other than loopback needs a token login")
    parser.add_argument("--port", type=int, default=int(os.environ.get("BARGE_CONSOLE_PORT", "8080")),
                        help="port (default 8080)")
    parser.add_argument("--login", action="store_true", default=os.environ.get("BARGE_CONSOLE_LOGIN") == "true",
                        help="ask for a bearer token even on loopback (always on other addresses)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig (default: $KUBECONFIG or ~/.kube/config; "
                        "in a pod, its service account finds the API server)")


def local_mode(address: str, login: bool) -> bool:
    """The local kubeconfig acts for users only on loopback and only when no login was asked for."""
    return is_loopback(address) and not login


async def serve(args: argparse.Namespace) -> None:
    base = base_configuration(args.kubeconfig)
    local = local_mode(args.address, args.login)
    store = Store()
    store.start(kubernetes.client.ApiClient(base))
    await wait_synced(store)
    app = build_app(Access(base, local), store)
    runner = web.AppRunner(app, access_log_format='%a "%r" %s %b %Tf')
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port)
    await site.start()
    mode = "local kubeconfig (loopback only)" if local else "bearer-token login"
    log.info("Barge console on http://%s:%d (%s)", args.address, args.port, mode)
    print(f"Barge console on http://{args.address}:{args.port} ({mode})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        store.stop()
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass
    except (kubernetes.config.ConfigException, FileNotFoundError) as exc:
        print(f"error: no cluster: {exc}; set KUBECONFIG or --kubeconfig", flush=True)
        return 4
    return 0


