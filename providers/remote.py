"""Running commands on a server over SSH, with the system's OpenSSH client.

Secrets travel over the SSH channel, never on a command line and never onto the remote disk:
the remote side is a small POSIX shell prelude that reads `NAME=VALUE` lines from standard
input (up to an empty line) into its environment with the `export` builtin, then runs the
command. Only the command's arguments, which hold no secret, appear in ssh's argv and in the
remote process list.

Long commands run "watched" (`start()`): the remote shell keeps reading the channel and, when
it ends (the local side closed it: a timeout, SIGTERM, or this process died), interrupts the
command with SIGINT, which lets restic remove its lock before it exits.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from failover.errors import RemoteError

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Read NAME=VALUE lines up to an empty line; `export` is a builtin, so no value ever shows
# in a process list. `read` on a pipe takes one byte at a time: the rest of stdin stays
# for the command.
PRELUDE = """\
while IFS= read -r failover_l; do
  [ -z "$failover_l" ] && break
  export "$failover_l"
done
unset failover_l
"""

# JOB must start the command in the background and set rp to its PID. When the control
# channel (stdin) ends, or the job sets dfail=1, the command is sent SIGINT (again every
# 0.2 s, in case it had not yet installed its handler) until it is gone. A job of several
# processes (a pipeline) is polled rather than waited for: `wait` on a pipeline's last PID
# waits for the whole pipeline.
WATCH = """\
exec 3<&0 </dev/null
stop=0
dfail=0
trap 'stop=1' TERM
rp=
%(job)s
( while IFS= read -r failover_x <&3; do :; done; kill -TERM $$ 2>/dev/null ) &
wp=$!
ip=
interrupt() {
  if [ -z "$ip" ] && { [ "$stop" = 1 ] || [ "$dfail" = 1 ]; }; then
    ( while kill -INT "$rp" 2>/dev/null; do sleep 0.2; done ) &
    ip=$!
  fi
}
%(loop)s
kill "$wp" $ip 2>/dev/null
%(after)s
exit "$rc"
"""

WAIT_LOOP = """\
while :; do
  interrupt
  wait "$rp"; rc=$?
  kill -0 "$rp" 2>/dev/null || break
done"""

POLL_LOOP = """\
while kill -0 "$rp" 2>/dev/null; do
  interrupt
  sleep 0.05
done
rc=0
if [ "$dfail" != 1 ]; then wait "$rp"; rc=$?; fi"""

PLAIN_JOB = '"$@" &\nrp=$!'

CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class RemoteResult:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


def encode_env(env_secrets: Mapping[str, str] | None) -> bytes:
    """The header the prelude reads: NAME=VALUE lines and an empty line."""
    lines = []
    for name, value in (env_secrets or {}).items():
        if not _ENV_NAME.match(name):
            raise RemoteError(f"invalid environment variable name {name!r}")
        if "\n" in value or "\r" in value or "\0" in value:
            raise RemoteError(f"the value of {name} holds a line break; it cannot be passed")
        lines.append(f"{name}={value}\n")
    return ("".join(lines) + "\n").encode()


def watched_script(job: str = PLAIN_JOB, after: str = "", poll: bool = False) -> str:
    return WATCH % {"job": job, "after": after, "loop": POLL_LOOP if poll else WAIT_LOOP}


class Remote:
    """One server reachable over SSH. `ssh_target` is a config SshTarget (or anything with
    host, port, user, key, known_hosts and options)."""

    def __init__(
        self,
        ssh_target: Any,
        address: str,
        *,
        name: str | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        ssh: str = "ssh",
    ) -> None:
        self.target = ssh_target
        self.host = getattr(ssh_target, "host", None) or address
        self.port = int(getattr(ssh_target, "port", 22) or 22)
        self.user = getattr(ssh_target, "user", None) or "root"
        self.name = name or self.host
        self.connect_timeout = connect_timeout
        self.ssh = ssh

    def __repr__(self) -> str:
        return f"Remote({self.user}@{self.host}:{self.port})"

    @property
    def where(self) -> str:
        return f"{self.name} ({self.user}@{self.host}:{self.port})"

    def ssh_argv(self, remote_command: str) -> list[str]:
        # ssh keeps the first value it is given for an option: the user's options come
        # first, so that they override the defaults below (ConnectTimeout, host key checks).
        argv = [self.ssh, "-T", "-p", str(self.port)]
        for option in getattr(self.target, "options", None) or []:
            argv += ["-o", option]
        argv += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={max(1, int(self.connect_timeout))}",
            "-o",
            "ServerAliveInterval=15",
            "-o",
            "ServerAliveCountMax=4",
            "-o",
            "LogLevel=ERROR",
        ]
        key = getattr(self.target, "key", None)
        if key:
            argv += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
        known = getattr(self.target, "known_hosts", None)
        if known:
            argv += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        argv += ["-l", self.user, "--", self.host, remote_command]
        return argv

    def command_line(
        self, argv: Sequence[str], script: str | None = None, env: Mapping[str, str] | None = None
    ) -> str:
        """The remote command: `exec /bin/sh -c SCRIPT failover ARGV...` (no secrets)."""
        body = PRELUDE
        for name, value in (env or {}).items():
            if not _ENV_NAME.match(name):
                raise RemoteError(f"invalid environment variable name {name!r}")
            body += f"export {name}={shlex.quote(value)}\n"
        body += script if script is not None else 'exec "$@"\n'
        return (
            "exec /bin/sh -c "
            + shlex.quote(body)
            + " failover "
            + " ".join(shlex.quote(a) for a in argv)
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        input: bytes | None = None,
        env_secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        check: bool = True,
        script: str | None = None,
    ) -> RemoteResult:
        """Run `argv` (or a shell `script` with argv as its arguments) and wait for it.

        env_secrets go over the channel; env (not secret) goes on the remote command line.
        Raises RemoteError when ssh itself fails (exit 255) or, with check, when the command
        exits non-zero.
        """
        cmd = self.ssh_argv(self.command_line(argv, script, env))
        data = encode_env(env_secrets) + (input or b"")
        try:
            proc = subprocess.run(
                cmd,
                input=data,
                capture_output=True,
                timeout=timeout,
                start_new_session=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RemoteError(
                f"{self.where}: command timed out after {timeout:g}s: {_short(argv)}"
            ) from None
        except FileNotFoundError:
            raise RemoteError(
                f"the ssh client {self.ssh!r} is not installed", hint="install openssh-client"
            ) from None
        result = RemoteResult(proc.returncode, proc.stdout, proc.stderr)
        if proc.returncode == 255:
            raise self.connection_error(proc.stderr.decode(errors="replace"))
        if check and proc.returncode != 0:
            tail = _tail(proc.stderr.decode(errors="replace"))
            raise RemoteError(
                f"{self.where}: {_short(argv)} exited with status {proc.returncode}: {tail}"
            )
        return result

    def start(
        self,
        argv: Sequence[str],
        *,
        env_secrets: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        job: str = PLAIN_JOB,
        after: str = "",
        poll: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start a watched command; stdout/stderr are pipes, stdin stays open as the control
        channel: close it to interrupt the command (SIGINT) on the server."""
        cmd = self.ssh_argv(self.command_line(argv, watched_script(job, after, poll), env))
        try:
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError:
            raise RemoteError(
                f"the ssh client {self.ssh!r} is not installed", hint="install openssh-client"
            ) from None
        assert proc.stdin is not None
        try:
            proc.stdin.write(encode_env(env_secrets))
            proc.stdin.flush()
        except BrokenPipeError:
            pass  # ssh already failed; its exit status and stderr say why
        return proc

    def connection_error(self, stderr: str) -> RemoteError:
        text = stderr.strip()
        low = text.lower()
        hint = None
        if "host key verification failed" in low or "no host key is known" in low:
            hint = (
                "the server's host key is not in known_hosts: add it (ssh-keyscan) or set "
                "ssh.known_hosts"
            )
        elif "remote host identification has changed" in low:
            hint = "the server's host key changed: check why before updating known_hosts"
        elif "permission denied" in low:
            hint = f"check ssh.user ({self.user}) and ssh.key, and the server's authorized_keys"
        elif "connection refused" in low:
            hint = f"nothing listens on port {self.port}: is sshd running?"
        elif "timed out" in low or "no route to host" in low or "unreachable" in low:
            hint = "the server does not answer: is it up and reachable from here?"
        elif "could not resolve" in low:
            hint = "the host name does not resolve"
        return RemoteError(
            f"ssh to {self.where} failed: {_tail(text) or 'exit status 255'}", hint=hint
        )


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    out = " / ".join(lines[-3:])
    return out[-limit:]


def _short(argv: Sequence[str]) -> str:
    return os.path.basename(argv[0]) if argv else "command"


__all__ = ["PLAIN_JOB", "Remote", "RemoteResult", "encode_env", "watched_script"]
