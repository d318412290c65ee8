"""Ports on this machine: a free one for a server, whether one is taken, and who listens on it (the readiness
check's evidence that the server answering is the one this run started)."""

from __future__ import annotations

import os
import socket

import psutil

from .processes import process_tree

LOCALHOST = "127.0.0.1"


def free_port(host: str = LOCALHOST) -> int:
    family = addresses(host, 0)[0][0] if host not in ("", "0.0.0.0") else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def addresses(host: str, port: int) -> list[tuple[int, str]]:
    """(family, address) of every address ``host`` names: "localhost" is 127.0.0.1 and often ::1 as well."""
    try:
        found = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return [(socket.AF_INET, host)]
    return list(dict.fromkeys((family, info[0]) for family, _, _, _, info in found))


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on the port at any address of ``host``, IPv4 or IPv6 (SO_REUSEADDR, as
    uvicorn binds: TIME_WAIT does not count)."""
    for family, address in addresses(host, port):
        with socket.socket(family) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError:
                return True
    return False


def listeners(port: int, host: str | None = None) -> list[tuple[int | None, str]]:
    """(PID, address) of every socket listening on ``port`` where a connection to ``host`` could land.

    The PID is None for a socket of another user's process (Linux shows the socket, not its owner).
    """
    addresses = None
    if host is not None:
        addresses = {"0.0.0.0", "::"}
        try:
            addresses |= {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
        except OSError:
            addresses = None
        else:
            addresses |= {f"::ffff:{address}" for address in list(addresses)}
    try:
        connections = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:  # not on Linux, where any user may list sockets
        return []
    return [
        (conn.pid, conn.laddr.ip) for conn in connections
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
        and (addresses is None or conn.laddr.ip in addresses)
    ]


def describe_pid(pid: int | None) -> str:
    """A process as an error may name it: its PID and name, and its command line only when it is this
    user's own (another user's may hold their secrets, such as an ``--api-key``)."""
    if pid is None:
        return "a process of another user (its PID is not visible to this user)"
    try:
        proc = psutil.Process(pid)
        if proc.uids().real != os.getuid():
            return f"PID {pid} ({proc.name()}, a process of another user)"
        command = " ".join(" ".join(proc.cmdline()).split())  # one line, even for a `python -c` script
        return f"PID {pid} ({proc.name()}: {command[:100]})"
    except psutil.Error:
        return f"PID {pid} (gone since)"


def tree_pids(pid: int) -> set[int]:
    """The process and its descendants; for SGLang, the server and every worker it started."""
    return {proc.pid for proc in process_tree(pid)}
