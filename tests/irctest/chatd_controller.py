"""irctest controller for chatd's IRC door (issue #24).

irctest (progval/irctest, MIT; a pinned copy lives in vendor/irctest)
starts one chatd per test through this module, the way its own
controllers/ngircd.py starts ngircd. Run by scripts/irctest:

    scripts/irctest            # the selection irctest's Makefile uses for ngircd

chatd is started on 127.0.0.1 with a private control socket and state
directory, rooms made by joining them (--room-creation anyone), as an
ircd's channels are.
"""

import ctypes
import os
import secrets
from pathlib import Path
import shutil
import signal
import subprocess
import time
from typing import Optional, Set, Type

from irctest.basecontrollers import BaseServerController, DirectoryBasedController
from irctest.runner import NotImplementedByController

REPO = Path(__file__).resolve().parents[2]


def _own_group_and_die_with_parent() -> None:
    """In the child before exec: its own process group (as irctest's
    execute() makes by default), and SIGTERM when the pytest worker that
    started it ends. A test whose setUp raises after the server started
    (bot_mode.py's, for a server without BOT) never reaches tearDown, and
    would leave chatd running after the suite."""
    os.setsid()
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def chatd_binary() -> str:
    path = os.environ.get("CHATD_BIN") or str(REPO / "target" / "debug" / "chatd")
    if not Path(path).exists():
        raise RuntimeError(f"{path} does not exist: cargo build --bin chatd first")
    return path


# irctest's operator (tests/oper.py and others): a chatd account that
# --irc-oper lets OPER with its own password.
OPER_NAME = "operuser"
OPER_PASSWORD = "operpassword"


class ChatdController(BaseServerController, DirectoryBasedController):
    software_name = "chatd"
    supported_sasl_mechanisms: Set[str] = {"PLAIN"}
    supports_sts = False

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if ssl:
            raise NotImplementedByController("TLS")
        assert self.proc is None
        self.port = port
        self.hostname = hostname
        self.create_config()
        assert self.directory
        password_args = []
        if password is not None:
            with self.open_file("server-password") as fd:
                fd.write(password + "\n")
            password_args = ["--irc-password-file", str(self.directory / "server-password")]
        # irctest's chathistory tests ask for history: every channel keeps
        # its last 1000 events, and each account its direct messages.
        history_args = []
        if self.test_config.chathistory:
            history_args = ["--history", "1000", "--direct-history", "1000"]
        # The IRCv3 WebSocket transport: chatd's web port.
        web_args = []
        if websocket_port is not None:
            web_args = ["--web-listen", f"{websocket_hostname}:{websocket_port}"]
        faketime_cmd = []
        if faketime and shutil.which("faketime"):
            faketime_cmd = ["faketime", "-f", faketime]
            self.faketime_enabled = True
        self.proc = self.execute(
            [
                *faketime_cmd,
                chatd_binary(),
                "--config",
                "none",
                "--listen",
                "none",
                "--irc-listen",
                f"127.0.0.1:{port}",
                "--irc-server-name",
                "My.Little.Server",
                "--control",
                str(self.directory / "control.sock"),
                "--state-dir",
                str(self.directory / "state"),
                "--room-creation",
                "anyone",
                "--irc-oper",
                OPER_NAME,
                "--log-level",
                "warn",
                # irctest's accounts have passwords such as "bar".
                "--password-min",
                "1",
                *password_args,
                *history_args,
                *web_args,
            ],
            preexec_fn=_own_group_and_die_with_parent,
        )
        self.add_account(OPER_NAME, OPER_PASSWORD)

    def wait_for_services(self) -> None:
        """Accounts are chatd's own (chatctl user add), as Ergo's are
        built in: there are no services to wait for."""

    def registerUser(self, case, username: str, password: Optional[str] = None) -> None:
        """irctest's account registration: a chatd account."""
        self.add_account(username, password or secrets.token_hex(8))

    def add_account(self, name: str, password: str) -> None:
        """chatctl user add, once the control socket answers."""
        assert self.directory
        chatctl = str(Path(chatd_binary()).with_name("chatctl"))
        socket = str(self.directory / "control.sock")
        deadline = time.time() + 10
        while True:
            done = subprocess.run(
                [chatctl, "--socket", socket, "user", "add", name],
                input=password + "\n",
                text=True,
                capture_output=True,
            )
            if done.returncode == 0:
                return
            if time.time() > deadline:
                raise RuntimeError(f"chatctl user add {name}: {done.stderr}")
            time.sleep(0.05)


def get_irctest_controller_class() -> Type[ChatdController]:
    return ChatdController
