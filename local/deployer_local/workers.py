"""A warm Lambda execution environment for one built function: the isolated interpreter that
`localrun.invoke` starts for every invoke, kept alive between invokes instead.

The worker imports the handler at its first invoke (the cold start), then serves invokes one
at a time. Every invoke runs `localrun`'s own runtime code (handler loading, context, error
shapes), so a warm invoke differs from a one-shot one only in what Lambda keeps too: modules,
clients and caches built at module level, the environment, the log stream.

Protocol: for each invoke the parent writes the invoke's config to a file and its path as one
JSON line on a request pipe; the child answers on a result pipe exactly as `localrun` does
(`{"phase": "invoke"}` once the handler is loaded, then `{"phase": "result", ...}`), then
writes the worker's end-of-invoke marker on its stdout: the logs of an invoke are what the
child printed before that marker.

As in Lambda, a worker whose invoke timed out, or whose process ended (a crash, `sys.exit`, an
init error), is gone: the next invoke starts a new one, a cold start that its notes report.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Self

from deployer_local import localrun
from deployer_local.localrun import DEFAULT_BUILD_DIR, INIT_TIMEOUT_SECONDS, BuiltFunction, InvokeResult, LocalRunError

__all__ = ["WarmFunction"]

STOP_SECONDS = 2.0
"""How long `close()` waits for a worker to exit on its own before killing it."""


class WarmFunction:
    """One built function (logical id or function name) with one warm worker process.

    Takes the arguments of `localrun.invoke`; `invoke(event)` returns the same `InvokeResult`.
    Invokes are served one at a time (callers on several threads wait their turn), as one Lambda
    execution environment serves them. Use it as a context manager, or call `close()`."""

    def __init__(
        self,
        function: str,
        *,
        env: Mapping[str, str],
        build_dir: Path = DEFAULT_BUILD_DIR,
        timeout: float | None = None,
        names: Mapping[str, str] | None = None,
        parameters: Mapping[str, str] | None = None,
    ) -> None:
        self._env = dict(env)
        self._region = self._env.get("AWS_REGION") or self._env.get("AWS_DEFAULT_REGION") or localrun.DEFAULT_REGION
        self.built = _resolve(
            function, env=self._env, build_dir=Path(build_dir), names=names, parameters=parameters, region=self._region
        )
        self.timeout = float(timeout if timeout is not None else self.built.timeout)
        self._substitutes = localrun._native_substitutes(tuple(p.resolve() for p in self.built.python_path))
        self._lock = threading.Lock()
        self._worker: _Worker | None = None
        self._cold_reason = "first invoke"
        self._closed = False
        self.cold_starts = 0
        self.invocations = 0

    @property
    def pid(self) -> int | None:
        """The worker's process id; None before the first invoke and after the worker is gone."""
        worker = self._worker
        return worker.process.pid if worker is not None else None

    def invoke(self, event: Mapping[str, Any]) -> InvokeResult:
        """Invoke the function with `event` in its warm worker (started first if there is none)."""
        request_id = str(uuid.uuid4())
        config = {
            "handler": self.built.handler,
            "event": event,
            "request_id": request_id,
            "timeout": self.timeout,
            "function_arn": f"arn:aws:lambda:{self._region}:{localrun.LOCAL_ACCOUNT}:function:"
            f"{self.built.function_name}",
        }
        try:
            text = json.dumps(config)
        except TypeError as exc:
            raise LocalRunError(f"the event is not JSON: {exc}") from exc
        with self._lock:
            if self._closed:
                raise LocalRunError(f"{self.built.logical_id}'s warm worker is closed")
            notes: list[str] = []
            worker = self._worker
            if worker is not None and worker.process.poll() is not None:
                self._retire(f"the previous worker exited: {_how_it_ended(worker.process.returncode)}")
                worker = None
            if worker is None:
                environment = localrun._lambda_environment(self.built, self._region, self._env)
                worker = self._worker = _Worker(self.built, environment)
                self.cold_starts += 1
                notes.append(f"cold start: new worker process {worker.process.pid} ({self._cold_reason})")
            run = worker.serve(request_id, text, self.timeout)
            self.invocations += 1
            if run.timed_out:
                self._retire(f"the previous worker timed out in its {run.timed_out} phase")
            elif run.returncode is not None:
                self._retire(f"the previous worker exited: {_how_it_ended(run.returncode)}")
        notes.extend(s.note for s in self._substitutes if s.path is not None and s.module in run.loaded)
        return localrun._result(self.built, request_id, run, self.timeout, tuple(notes))

    __call__ = invoke

    def close(self) -> None:
        """Stop the worker (it exits when its request pipe closes; killed if it does not). An
        invoke in progress is not waited for beyond STOP_SECONDS: its worker is killed, and the
        invoke ends as a worker that exited does."""
        self._closed = True
        if not self._lock.acquire(timeout=STOP_SECONDS):
            worker = self._worker
            if worker is not None:
                localrun._kill(worker.process)
            self._lock.acquire()
        try:
            if self._worker is not None:
                self._worker.stop()
                self._worker = None
        finally:
            self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _retire(self, reason: str) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None
        self._cold_reason = reason


def _resolve(
    function: str,
    *,
    env: Mapping[str, str],
    build_dir: Path,
    names: Mapping[str, str] | None,
    parameters: Mapping[str, str] | None,
    region: str,
) -> BuiltFunction:
    """The checks `localrun.invoke` makes before it runs anything."""
    functions = localrun.built_functions(build_dir, names=names, parameters=parameters, region=region)
    built = functions.get(function) or next((f for f in functions.values() if f.function_name == function), None)
    if built is None:
        raise LocalRunError(f"no function {function!r} in the build; built: {', '.join(sorted(functions)) or 'none'}")
    localrun._check_runtime(built)
    missing = {name: why for name, why in built.unresolved.items() if name not in env}
    if missing:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
        raise LocalRunError(f"{built.logical_id}'s environment cannot be resolved here ({listed}); pass it in env")
    return built


def _how_it_ended(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        return f"signal {-returncode}"
    return f"exit status {returncode}"


class _Worker:
    """One child interpreter and its pipes."""

    def __init__(self, built: BuiltFunction, environment: Mapping[str, str]) -> None:
        self.marker = f"~~deployer-warm-worker-{uuid.uuid4().hex}~~\n".encode()
        self.scratch = Path(tempfile.mkdtemp(prefix="deployer-warm-"))
        results_read, results_write = os.pipe()
        requests_read, requests_write = os.pipe()
        code = f"_LAMBDA_RUNTIME = {localrun._INVOKE!r}\n{_SERVE}"
        command = [
            *localrun.isolated_python(built.python_path, code),
            self.marker.decode().rstrip("\n"),
            str(results_write),
            str(requests_read),
        ]
        try:
            self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
                command,
                cwd=built.code_dir,
                env=dict(environment),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                pass_fds=(results_write, requests_read),
                start_new_session=True,
            )
        except BaseException:
            os.close(results_read)
            os.close(requests_write)
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        finally:
            os.close(results_write)
            os.close(requests_read)
        # File objects, not bare fds: if this object is dropped unclosed, the request pipe
        # closes with it and the child, reading end-of-file, exits.
        self.results: BinaryIO = os.fdopen(results_read, "rb", buffering=0)
        self.requests: BinaryIO = os.fdopen(requests_write, "wb", buffering=0)
        assert self.process.stdout is not None
        self.stdout: IO[bytes] = self.process.stdout
        self.pending_logs = bytearray()
        self.channel = bytearray()

    def serve(self, request_id: str, config: str, limit: float) -> localrun._ChildRun:
        """One invoke; `run.timed_out` or `run.returncode` set means the worker is gone."""
        run = localrun._ChildRun()
        config_file = self.scratch / f"{request_id}.json"
        config_file.write_text(config, encoding="utf-8")
        # If the child is gone, its output ends and the invoke reports how it ended.
        with contextlib.suppress(BrokenPipeError):
            self.requests.write((json.dumps({"config_file": str(config_file)}) + "\n").encode())
        logs: bytes | None = None
        deadline = time.monotonic() + INIT_TIMEOUT_SECONDS + limit
        with selectors.DefaultSelector() as selector:
            selector.register(self.stdout, selectors.EVENT_READ)
            selector.register(self.results, selectors.EVENT_READ)
            while selector.get_map() and (logs is None or not _finished(run)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    run.timed_out = "invoke" if localrun._invoked(run) else "init"
                    break
                for key, _ in selector.select(remaining):
                    data = os.read(key.fd, 65536)
                    if not data:
                        selector.unregister(key.fileobj)
                    elif key.fileobj is self.stdout:
                        self.pending_logs.extend(data)
                        end = self.pending_logs.find(self.marker)
                        if end >= 0:
                            logs = bytes(self.pending_logs[:end])
                            del self.pending_logs[: end + len(self.marker)]
                    else:
                        self.channel.extend(data)
                        was_invoked = localrun._invoked(run)
                        localrun._take_messages(self.channel, run)
                        if not was_invoked and localrun._invoked(run):
                            deadline = time.monotonic() + limit
        config_file.unlink(missing_ok=True)
        if logs is None:  # timed out, or the child ended: all it printed belongs to this invoke
            if run.timed_out:
                localrun._kill(self.process)
                self.pending_logs.extend(localrun._drain(self.stdout))
            else:
                run.returncode = _wait_or_kill(self.process, max(deadline - time.monotonic(), STOP_SECONDS))
            logs = bytes(self.pending_logs)
            self.pending_logs.clear()
        run.logs = logs
        final = next((m for m in run.messages if m.get("phase") == "result"), None)
        run.loaded = frozenset((final or {}).get("substituted") or [])
        return run

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.requests.close()
        _wait_or_kill(self.process, STOP_SECONDS)
        self.stdout.close()
        self.results.close()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _wait_or_kill(process: subprocess.Popen[bytes], seconds: float) -> int:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        localrun._kill(process)
        return process.wait()


def _finished(run: localrun._ChildRun) -> bool:
    return any(m.get("phase") == "result" for m in run.messages)


# Runs after localrun's prelude: argv is the end-of-invoke marker, the result fd and the request
# fd. `_LAMBDA_RUNTIME` is localrun's one-invoke runtime code, run once per request with its own
# argv (config file, result fd) in a fresh namespace; the handler's module stays imported.
_SERVE = r"""
import os

_marker = (sys.argv[1] + "\n").encode()
_result_fd, _request_fd = int(sys.argv[2]), int(sys.argv[3])
_runtime = compile(_LAMBDA_RUNTIME, "<string>", "exec")
del sys.argv[1:]
with os.fdopen(_request_fd, "r", encoding="utf-8") as _requests:
    for _line in _requests:
        _request = json.loads(_line)
        _fd = os.dup(_result_fd)
        sys.argv[1:] = [_request["config_file"], str(_fd)]
        _namespace = {"__name__": "__main__", "sys": sys, "json": json, "substituted": substituted}
        try:
            exec(_runtime, _namespace)
        finally:
            del sys.argv[1:]
            if _namespace.get("channel") is not None:
                _namespace["channel"].close()
            else:
                os.close(_fd)
        sys.stdout.flush()
        sys.stderr.flush()
        os.write(1, _marker)
"""
