"""The embedded PostgreSQL + PostGIS cluster that CityHex runs when no database URL is given.

The cluster lives in ``<home>/pg``: the data directory, its log, and the Unix socket. It is
made with the machine's own PostgreSQL binaries; when run as root, initdb and pg_ctl run as
an unprivileged system user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from gis.errors import ServiceUnavailable

DATABASE = "cityhex"
SUPERUSER = "cityhex"
OS_USERS = ("postgres", "cityhex")
WAIT = ("-w", "-t", "60")
SERVER_ENVIRONMENT = {
    "GLIBC_TUNABLES": "glibc.malloc.trim_threshold=268435456:glibc.malloc.mmap_threshold=33554432"
}
"""The server's environment: backends keep freed memory (up to 256 MB) and take blocks under
32 MB from it, instead of handing them back to the kernel after every statement (glibc's
defaults trim at 128 KB and map large blocks afresh), so a large tile does not fault its
working memory in again each time (a third of its time otherwise)."""

POSTGIS_HELP = (
    "PostGIS is not installed for PostgreSQL {version} ({control} is missing). Install it:\n"
    "  Debian/Ubuntu: sudo apt-get install postgresql-{version}-postgis-3\n"
    "  macOS (Homebrew): brew install postgis\n"
    "  or run the official image: docker run -p 5432:5432 -e POSTGRES_PASSWORD=pw "
    "postgis/postgis:16-3.4 and set CITYHEX_DATABASE_URL=postgresql://postgres:pw@127.0.0.1/postgres"
)
POSTGRES_HELP = (
    "No PostgreSQL server binaries found (no pg_config, nothing in /usr/lib/postgresql/*/bin).\n"
    "  Debian/Ubuntu: sudo apt-get install postgresql postgresql-15-postgis-3\n"
    "  macOS (Homebrew): brew install postgresql postgis\n"
    "  or set CITYHEX_DATABASE_URL to an existing PostGIS database."
)


class ClusterError(ServiceUnavailable):
    """The embedded cluster could not be made, started or reached."""

    code = "embedded_database"


@dataclass(frozen=True)
class PgInstall:
    """A PostgreSQL server installation: its binaries and its share folder."""

    bindir: Path
    sharedir: Path
    version: str

    def require_postgis(self) -> None:
        """Raise a ClusterError that says how to install PostGIS when it is missing."""
        control = self.sharedir / "extension" / "postgis.control"
        if not control.exists():
            raise ClusterError(POSTGIS_HELP.format(version=self.version, control=control))


def _pg_config(option: str) -> str | None:
    exe = shutil.which("pg_config")
    if not exe:
        return None
    try:
        return subprocess.run(
            [exe, option], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def find_install() -> PgInstall:
    """Locate the PostgreSQL server binaries: pg_config first, then /usr/lib/postgresql/*/bin."""
    candidates: list[Path] = []
    bindir = _pg_config("--bindir")
    if bindir:
        candidates.append(Path(bindir))
    numbered = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += [Path(p) for p in numbered]
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            version = cand.parent.name if cand.parent.name.isdigit() else _server_version(cand)
            share = Path(f"/usr/share/postgresql/{version}")
            if not share.exists():
                share = Path(_pg_config("--sharedir") or share)
            return PgInstall(bindir=cand, sharedir=share, version=version)
    raise ClusterError(POSTGRES_HELP)


def _server_version(bindir: Path) -> str:
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    return out.stdout.split()[-1].split(".")[0]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedCluster:
    """A PostgreSQL + PostGIS cluster in a folder of its own: make, start, stop, status, url."""

    def __init__(self, home: Path, port: int = 0) -> None:
        self.root = (Path(home) / "pg").absolute()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._port_file = self.root / "port"
        self._wanted_port = port
        self._install: PgInstall | None = None

    @property
    def install(self) -> PgInstall:
        """The PostgreSQL installation this cluster runs on."""
        if self._install is None:
            self._install = find_install()
        return self._install

    @property
    def port(self) -> int:
        """The loopback port, fixed when the cluster was made."""
        if self._port_file.exists():
            return int(self._port_file.read_text().strip())
        return self._wanted_port

    def url(self, database: str = DATABASE) -> str:
        """The URL of the cluster's database on the loopback port."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    # -- running as an unprivileged user -------------------------------------------------

    def _os_user(self) -> str | None:
        """The system user that owns the cluster when we are root (None when not root)."""
        if os.geteuid() != 0:
            return None
        for name in OS_USERS:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "cityhex"],
            check=True,
        )
        return "cityhex"

    def _run(
        self, *args: str, check: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.install.bindir / args[0]), *args[1:]]
        user = self._os_user()
        if user:
            cmd = ["runuser", "-u", user, "--", *cmd]
        environment = {**os.environ, **env} if env else None
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/", env=environment)
        if check and proc.returncode != 0:
            raise ClusterError(f"{args[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def _chown(self, path: Path) -> None:
        user = self._os_user()
        if user:
            shutil.chown(path, user=user, group=pwd.getpwnam(user).pw_gid)

    def _check_reachable(self) -> None:
        user = self._os_user()
        if not user:
            return
        probe = subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(self.root)])
        if probe.returncode != 0:
            raise ClusterError(
                f"the system user {user!r} cannot reach {self.root}: a parent folder is closed "
                "to other users. Set CITYHEX_HOME to a folder it can reach (e.g. /var/lib/cityhex)."
            )

    # -- lifecycle ------------------------------------------------------------------------

    def initialized(self) -> bool:
        """Whether the data directory has been made."""
        return (self.data / "PG_VERSION").exists()

    def init(self) -> None:
        """Make the data directory (once) with trust auth on the socket and loopback only."""
        self.install.require_postgis()
        if self.initialized():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        self._check_reachable()
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8" if _has_c_utf8() else "--locale=C",
        )
        port = self._wanted_port or free_port()
        self._port_file.write_text(f"{port}\n")
        conf = self.data / "cityhex.conf"
        conf.write_text(
            "# written by cityhex: the embedded cluster\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{self.root}'\n"
            "max_connections = 200\n"
            "shared_buffers = 512MB\n"
            "work_mem = 32MB\n"
            "maintenance_work_mem = 512MB\n"
            "random_page_cost = 1.1\n"
            "jit = off\n"
            "max_wal_size = 4GB\n"
            "synchronous_commit = off\n"
        )
        self._chown(conf)
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write("\ninclude_if_exists = 'cityhex.conf'\n")

    def running(self) -> bool:
        """Whether the cluster's postmaster is alive (a crashed, unreaped one is not)."""
        if not self.initialized():
            return False
        if self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode != 0:
            return False
        return not _is_zombie(self._postmaster_pid())

    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _clear_stale_locks(self) -> None:
        """Remove the pid and socket lock files a crashed postmaster left behind."""
        stale = [self.data / "postmaster.pid", self.root / f".s.PGSQL.{self.port}.lock"]
        for lock in stale:
            lock.unlink(missing_ok=True)

    def start(self, extra_conf: dict[str, str] | None = None) -> str:
        """Make (once) and start the cluster, create the database and PostGIS; return the URL.

        Starting a running cluster only re-checks the database; a stale pid file left by a
        crash is removed first.
        """
        self.init()
        if extra_conf:
            conf = self.data / "cityhex.local.conf"
            conf.write_text("".join(f"{k} = {v}\n" for k, v in extra_conf.items()))
            self._chown(conf)
            pgconf = self.data / "postgresql.conf"
            if "cityhex.local.conf" not in pgconf.read_text():
                with pgconf.open("a") as fh:
                    fh.write("include_if_exists = 'cityhex.local.conf'\n")
        self._start_server()
        self._ensure_database()
        return self.url()

    def _start_server(self) -> None:
        """Start the server unless it runs (clearing a stale pid file left by a crash)."""
        if self.running():
            return
        self._clear_stale_locks()
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            *WAIT,
            env=SERVER_ENVIRONMENT,
        )

    def stop(self) -> None:
        """Stop the cluster (fast shutdown); harmless when it is not running."""
        if self.running():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", *WAIT)

    def status(self) -> dict[str, object]:
        """What the cluster is: its folder, port, URL and whether it runs."""
        return {
            "folder": str(self.root),
            "initialized": self.initialized(),
            "running": self.running(),
            "port": self.port,
            "url": self.url(),
            "postgresql": self.install.version,
        }

    def _ensure_database(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
                    exists = conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                    ).fetchone()
                    if not exists:
                        conn.execute(f'CREATE DATABASE "{DATABASE}"')
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")


def _is_zombie(pid: int | None) -> bool:
    """Whether ``pid`` is a dead process its parent has not reaped (Linux /proc)."""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _has_c_utf8() -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True)
    return any(loc.lower() in ("c.utf8", "c.utf-8") for loc in out.stdout.split())


REPLICA_SLOT = "cityhex_replica"
"""The replication slot of the embedded replica on its primary: the primary keeps the WAL
the replica has not received yet (also while the replica is stopped)."""


class ReplicaCluster(EmbeddedCluster):
    """A streaming replica of an embedded cluster, in ``<home>/pg-replica``, on loopback.

    It is made once with ``pg_basebackup -R`` (standby.signal and primary_conninfo) through
    a physical replication slot, then started and stopped like the primary; it answers reads
    only (hot standby).
    """

    def __init__(self, home: Path, primary: EmbeddedCluster, port: int = 0) -> None:
        super().__init__(home, port=port)
        self.root = (Path(home) / "pg-replica").absolute()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._port_file = self.root / "port"
        self.primary = primary

    def init(self) -> None:
        """Copy the running primary with pg_basebackup through the replica's slot (once) and
        give the copy its own port, socket folder and standby settings."""
        if self.initialized():
            return
        if not self.primary.running():
            raise ClusterError("the primary is not running: start it first (cityhex db start)")
        self.root.mkdir(parents=True, exist_ok=True)
        self._chown(self.root)
        self._check_reachable()
        with psycopg.connect(self.primary.url("postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (REPLICA_SLOT,),
            )
        self._run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.primary.port),
            "-U",
            SUPERUSER,
            "-D",
            str(self.data),
            "-R",
            "-X",
            "stream",
            "-C",
            "-S",
            REPLICA_SLOT,
            "-c",
            "fast",
        )
        port = self._wanted_port or free_port()
        self._port_file.write_text(f"{port}\n")
        conf = self.data / "cityhex.conf"
        conf.write_text(
            "# written by cityhex: the embedded replica\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{self.root}'\n"
            "max_connections = 200\n"
            "shared_buffers = 128MB\n"
            "work_mem = 32MB\n"
            "random_page_cost = 1.1\n"
            "jit = off\n"
            "hot_standby = on\n"
            "hot_standby_feedback = on\n"
            "wal_receiver_status_interval = 1s\n"
        )
        self._chown(conf)

    def start(self, extra_conf: dict[str, str] | None = None) -> str:
        """Make (once) and start the replica; return its URL. It replays the primary's WAL
        and takes no writes, so no database is created here."""
        self.init()
        self._start_server()
        return self.url()

    def drop(self) -> None:
        """Stop the replica, delete its folder and its slot on the primary (which otherwise
        keeps WAL for it)."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.primary.running():
            with psycopg.connect(self.primary.url("postgres"), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (REPLICA_SLOT,),
                )
