"""moto in server mode over real HTTP on 127.0.0.1, as the integration tests' AWS.

One server per test run, started on a free port; each test starts from an empty account by
resetting it (POST /moto-api/reset, a tenth of a second) instead of restarting it. The test
process and every function run by `deployer_local.localrun` reach it through AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from moto.server import ThreadedMotoServer


@dataclass(frozen=True)
class MotoServer:
    url: str
    server: ThreadedMotoServer

    def reset(self) -> None:
        """Forget every resource in every account and region."""
        request = urllib.request.Request(f"{self.url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            if response.status != 200:
                raise RuntimeError(f"moto server refused the reset: HTTP {response.status}")

    def use(self, monkeypatch: pytest.MonkeyPatch) -> str:
        """Start this test from an empty account and point the test process's AWS clients at it."""
        self.reset()
        monkeypatch.setenv("AWS_ENDPOINT_URL", self.url)
        return self.url


@contextmanager
def running_moto_server() -> Iterator[MotoServer]:
    # The server runs in this process: its EC2 backend reads the variable here. Without it every
    # region's first EC2 call loads thousands of AMIs that no test needs.
    os.environ["MOTO_EC2_LOAD_DEFAULT_AMIS"] = "false"
    # werkzeug logs one line per request; the functions' own logs are what the tests read.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(f"http://{host}:{port}", server)
    finally:
        server.stop()
