"""Start and stop a real `tritonserver` (the binary bundled in nvidia-pytriton) on 127.0.0.1.

Gotchas handled here (platform-facts): the python-backend stub must find this
interpreter's libpython (LD_LIBRARY_PATH) and this venv's packages (PATH, since the
stub ignores PYTHONPATH); the stub for this Python version is linked into a private
backend directory; the server stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request

from kollm.core.errors import KollmError


def pytriton_dir() -> str:
    try:
        import pytriton
    except ImportError:
        raise KollmError(
            "nvidia-pytriton is not installed in this environment; serving runs in the serve "
            "environment (.venv-serve, requirements/serve.txt)"
        ) from None
    return os.path.join(os.path.dirname(pytriton.__file__), "tritonserver")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_dir(work_dir: str) -> str:
    """A backend directory whose python backend uses the stub built for this Python version."""
    src = pytriton_dir()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub_dir = os.path.join(src, "python_backend_stubs", version)
    if not os.path.isdir(stub_dir):
        raise KollmError(f"the bundled Triton has no python-backend stub for Python {version}")
    target = os.path.join(work_dir, "backends", "python")
    os.makedirs(target, exist_ok=True)
    backend_src = os.path.join(src, "backends", "python")
    for name, folder in (
        ("libtriton_python.so", backend_src),
        ("triton_python_backend_utils.py", backend_src),
        ("triton_python_backend_stub", stub_dir),
    ):
        link = os.path.join(target, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.join(folder, name), link)
    return os.path.dirname(target)


def check_ports(host: str, ports: dict[str, int]) -> None:
    """A port someone else holds is a one-line error before tritonserver starts (it would exit with a bind
    failure buried in its log). `ports`: setting name -> port; 0 (any free port) is not checked."""
    for name, port in ports.items():
        if not port:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart's TIME_WAIT is not "in use"
            try:
                s.bind((host, port))
            except OSError:
                raise KollmError(
                    f"port {port} on {host} is in use (another server?): stop it, or choose "
                    f"another with {name}=PORT (0 = any free port)"
                ) from None


class TritonServer:
    def __init__(
        self,
        repo_dir: str,
        work_dir: str,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
    ):
        self.repo_dir, self.work_dir, self.host = repo_dir, work_dir, host
        self.http_port = http_port or free_port()
        self.grpc_port = grpc_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = os.path.join(work_dir, "tritonserver.log")

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    def command(self) -> list[str]:
        return [
            os.path.join(pytriton_dir(), "bin", "tritonserver"),
            f"--model-repository={os.path.abspath(self.repo_dir)}",
            f"--backend-directory={backend_dir(self.work_dir)}",
            f"--http-address={self.host}",
            f"--http-port={self.http_port}",
            f"--grpc-address={self.host}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.host}",
            f"--metrics-port={self.metrics_port}",
            "--allow-metrics=true",
            "--log-verbose=0",
            "--exit-timeout-secs=10",
        ]

    def environment(self) -> dict:
        env = dict(os.environ)
        libdir = sysconfig.get_config_var("LIBDIR") or os.path.join(sys.base_prefix, "lib")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [libdir, env.get("LD_LIBRARY_PATH", "")]))
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("OMP_NUM_THREADS", "1")
        return env

    def check_ports(self) -> None:
        check_ports(
            self.host,
            {
                "serve.http_port": self.http_port,
                "serve.grpc_port": self.grpc_port,
                "serve.metrics_port": self.metrics_port,
            },
        )

    def start(self, timeout_s: float = 120.0) -> TritonServer:
        os.makedirs(self.work_dir, exist_ok=True)
        self.check_ports()
        log = open(self.log_path, "a")  # a restart keeps the earlier log
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.environment(), start_new_session=True
        )
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise KollmError(
                    f"tritonserver exited with code {self.proc.returncode}; last log lines:\n" + self.log_tail()
                )
            try:
                with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise KollmError(f"tritonserver not ready after {timeout_s:.0f}s; log: {self.log_path}\n" + self.log_tail())

    def log_tail(self, n: int = 15) -> str:
        try:
            return "".join(open(self.log_path, errors="replace").readlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
