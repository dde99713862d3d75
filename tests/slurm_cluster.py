"""A real one-node Slurm cluster with accounting, on 127.0.0.1, for tests.

Debian's Slurm 22.05 daemons (munged, mariadbd, slurmdbd, slurmctld, slurmd) run as
child processes with every file in one temporary folder and every port free-picked, so
a test run never touches a system Slurm. `SLURM_CONF` (in `cluster.env`) points the
client commands (sbatch, squeue, sacct, scancel — what NeMo Run's SlurmExecutor calls)
at it. Accounting is needed: NeMo Run reads job states with sacct.

    with SlurmCluster() as cluster:        # ~10 s to start
        subprocess.run(["sbatch", ...], env=cluster.env)

`tests/install_slurm.sh` installs the packages (`make test` runs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

DAEMONS = ("munged", "mariadbd", "mariadb-install-db", "slurmdbd", "slurmctld", "slurmd", "sacctmgr", "sbatch", "sacct")
SBIN = ("/usr/sbin", "/usr/bin", "/sbin")


def which(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *SBIN]))


def missing_programs() -> list[str]:
    return [d for d in DAEMONS if which(d) is None]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, what: str, timeout: float, log: str | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = open(log, errors="replace").read()[-3000:] if log and os.path.exists(log) else ""
    raise RuntimeError(f"{what} did not come up in {timeout:.0f}s\n{tail}")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class SlurmCluster:
    def __init__(self, cluster_name: str = "kollm", partition: str = "debug"):
        self.cluster_name, self.partition = cluster_name, partition
        # short path: unix socket names are limited to ~100 bytes
        self.root = tempfile.mkdtemp(prefix="kslurm-", dir="/tmp")
        os.chmod(self.root, 0o711)
        self.procs: list[subprocess.Popen] = []
        self.env: dict[str, str] = {}

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def _spawn(self, args: list[str], log: str, env: dict | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            args,
            stdout=open(self.path(log), "w"),
            stderr=subprocess.STDOUT,
            env=env or self.env,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def start(self) -> SlurmCluster:
        for d in ("munge", "db", "state", "spool", "log"):
            os.makedirs(self.path(d), exist_ok=True)
        os.chmod(self.path("munge"), 0o711)  # munged wants the socket folder traversable
        ports = {k: _free_port() for k in ("db", "dbd", "ctld", "slurmd")}
        munge_socket = self.path("munge", "munge.socket")
        self.env = {
            **os.environ,
            "SLURM_CONF": self.path("slurm.conf"),
            "PATH": os.pathsep.join([os.environ.get("PATH", ""), *SBIN]),
        }

        # 1. munge, with a key of our own
        key = self.path("munge", "munge.key")
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chmod(key, 0o400)
        subprocess.run(
            [
                which("munged"),
                "--force",
                f"--socket={munge_socket}",
                f"--key-file={key}",
                f"--pid-file={self.path('munge', 'munged.pid')}",
                f"--log-file={self.path('log', 'munged.log')}",
                f"--seed-file={self.path('munge', 'seed')}",
            ],
            check=True,
            env=self.env,
        )
        _wait(lambda: os.path.exists(munge_socket), "munged", 15, self.path("log", "munged.log"))

        # 2. MariaDB for slurmdbd (grant tables skipped: loopback-only, throwaway data)
        subprocess.run(
            [
                which("mariadb-install-db"),
                f"--datadir={self.path('db')}",
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            env=self.env,
            capture_output=True,
        )
        self._spawn(
            [
                which("mariadbd"),
                "--no-defaults",
                f"--datadir={self.path('db')}",
                "--user=root",
                f"--socket={self.path('db', 'mysql.sock')}",
                f"--port={ports['db']}",
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                f"--pid-file={self.path('db', 'mysqld.pid')}",
            ],
            "log/mariadbd.log",
        )
        _wait(lambda: _port_open(ports["db"]), "mariadbd", 60, self.path("log", "mariadbd.log"))

        auth = f"AuthType=auth/munge\nAuthInfo=socket={munge_socket}\n"
        dbd_conf = self.path("slurmdbd.conf")
        with open(dbd_conf, "w") as f:
            f.write(
                auth + f"DbdHost=localhost\nDbdAddr=127.0.0.1\nDbdPort={ports['dbd']}\nSlurmUser=root\n"
                "StorageType=accounting_storage/mysql\n"
                # 127.0.0.1, not localhost: localhost makes the client try the unix socket
                f"StorageHost=127.0.0.1\nStoragePort={ports['db']}\nStorageUser=root\nStorageLoc=slurm_acct_db\n"
                f"PidFile={self.path('state', 'slurmdbd.pid')}\nLogFile={self.path('log', 'slurmdbd.log')}\n"
            )
        os.chmod(dbd_conf, 0o600)  # slurmdbd refuses a readable config
        with open(self.path("slurm.conf"), "w") as f:
            # cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
            f.write(
                f"AuthType=auth/munge\nAuthInfo=socket={munge_socket},cred_expire=30\n"
                + f"ClusterName={self.cluster_name}\nSlurmctldHost=localhost(127.0.0.1)\n"
                f"SlurmctldPort={ports['ctld']}\nSlurmdPort={ports['slurmd']}\nSlurmUser=root\nSlurmdUser=root\n"
                f"StateSaveLocation={self.path('state')}\nSlurmdSpoolDir={self.path('spool')}\n"
                f"SlurmctldPidFile={self.path('state', 'slurmctld.pid')}\n"
                f"SlurmdPidFile={self.path('state', 'slurmd.pid')}\n"
                f"SlurmctldLogFile={self.path('log', 'slurmctld.log')}\n"
                f"SlurmdLogFile={self.path('log', 'slurmd.log')}\n"
                # no cgroups in a container: track processes by parent pid, bind nothing
                "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
                "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
                "SchedulerType=sched/backfill\nJobAcctGatherType=jobacct_gather/none\n"
                "AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
                f"AccountingStoragePort={ports['dbd']}\nJobCompType=jobcomp/none\n"
                # for munge auth this "password" is the munge socket used to reach slurmdbd
                f"AccountingStoragePass={munge_socket}\n"
                "MinJobAge=300\nKillWait=5\nInactiveLimit=0\n"
                f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={os.cpu_count()} State=UNKNOWN\n"
                f"PartitionName={self.partition} Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n"
            )

        # 3. slurmdbd, the cluster's row in accounting, then the controller and the node
        # slurmdbd reads slurmdbd.conf from the folder of $SLURM_CONF
        self._spawn([which("slurmdbd"), "-D"], "log/slurmdbd.out")
        _wait(lambda: _port_open(ports["dbd"]), "slurmdbd", 60, self.path("log", "slurmdbd.log"))
        add = subprocess.run(
            [which("sacctmgr"), "-i", "add", "cluster", self.cluster_name], env=self.env, capture_output=True, text=True
        )
        if add.returncode != 0:
            raise RuntimeError(f"sacctmgr add cluster failed: {add.stdout}{add.stderr}")
        self._spawn([which("slurmctld"), "-D", "-i"], "log/slurmctld.out")
        _wait(lambda: _port_open(ports["ctld"]), "slurmctld", 60, self.path("log", "slurmctld.log"))
        self._spawn([which("slurmd"), "-D", "-N", "localhost"], "log/slurmd.out")

        def node_idle():
            out = subprocess.run([which("sinfo"), "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            return out.stdout.strip() in ("idle", "mixed", "allocated")

        _wait(node_idle, "slurmd (node idle)", 60, self.path("log", "slurmd.log"))
        return self

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        pid_file = self.path("munge", "munged.pid")
        if os.path.exists(pid_file):
            try:
                os.kill(int(open(pid_file).read().strip()), 15)
            except (ProcessLookupError, ValueError):
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def log(self, name: str) -> str:
        path = self.path("log", name)
        return open(path, errors="replace").read() if os.path.exists(path) else ""

    def __enter__(self) -> SlurmCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()
