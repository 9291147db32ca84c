"""Seeded mutation fuzzers for what reads untrusted input: frames, messages, the session state machine,
received path names, and the config parser.

Each fuzzer is a plain function ``fuzz_X(inputs, seed) -> Report``: it builds inputs by mutating a corpus
of valid ones (bit flips, interesting bytes, cuts, splices, repeated ranges) plus purely random ones,
feeds them in, and records every exception that is not one of the allowed error types, with the input
that caused it (``Report.failures``), so a failure is reproducible from its seed and index alone. The
same seed gives the same inputs. Used by tests/fuzz (a short run by default, the full counts under
``-m slow``) and by bench/fuzz.py.
"""

from __future__ import annotations

import random
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from shoal.config.parser import parse_text
from shoal.config.printer import render
from shoal.errors import ConfigError, ProtocolError
from shoal.model.paths import PathMap, UnsafePath, is_within
from shoal.proto import messages as m
from shoal.proto.frames import MAX_FRAME, frame
from shoal.proto.session import PEER, TRANSITIONS, Connection, Role, State

# msgpack type markers and limits
_INTERESTING = bytes.fromhex("00017f80ffc0c1c2c3cccdcecfd9dadbdcdddedf909fa0bfc4c5c6d0d3e0")


@dataclass
class Failure:
    index: int
    data: bytes | str
    error: str


@dataclass
class Report:
    target: str
    inputs: int = 0
    accepted: int = 0  #: inputs (or messages) that parsed / decoded without error
    refused: int = 0  #: inputs refused with an allowed error
    failed: int = 0  #: inputs that raised something not allowed (or broke an invariant)
    failures: list[Failure] = field(default_factory=list)  #: the first 20 of them, with their input

    def fail(self, index: int, data: bytes | str, exc: BaseException) -> None:
        if len(self.failures) < 20:  # enough to debug; the count below keeps the total
            self.failures.append(Failure(index, data, "".join(traceback.format_exception_only(exc)).strip()))
        self.failed += 1


def mutate_bytes(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    """One to four random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        n = len(buf)
        if op == 0 and n:  # flip a bit
            i = rng.randrange(n)
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:  # an interesting byte (msgpack type markers, limits)
            buf[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 2:  # insert random bytes
            i = rng.randrange(n + 1)
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3 and n:  # delete a range
            i = rng.randrange(n)
            del buf[i : i + rng.randint(1, 16)]
        elif op == 4 and n:  # truncate
            del buf[rng.randrange(n) :]
        elif op == 5 and n:  # repeat a range
            i = rng.randrange(n)
            j = min(n, i + rng.randint(1, 32))
            buf[j:j] = buf[i:j] * rng.randint(1, 4)
        elif op == 6 and corpus:  # splice with another input
            other = rng.choice(corpus)
            i, j = rng.randrange(n + 1), rng.randrange(len(other) + 1)
            buf = buf[:i] + bytearray(other[j:])
        elif op == 7 and n >= 4:  # overwrite with a big-endian length-like value
            i = rng.randrange(n - 3)
            buf[i : i + 4] = rng.choice((0, 1, 0x7FFFFFFF, 0xFFFFFFFF, rng.randrange(1 << 32))).to_bytes(4, "big")
    return bytes(buf)


def _record(rng: random.Random, path: str) -> m.WireRecord:
    return m.WireRecord(
        path,
        rng.randrange(6),
        rng.choice((0, 1, 4096, (1 << 63) - 1)),
        rng.choice((0o644, 0o7777, 0)),
        rng.choice((0, 1000, (1 << 32) - 1)),
        0,
        "root",
        "wheel",
        rng.choice((0, 1_700_000_000_000_000_000, -1)),
        rng.choice((None, b"\x00" * 32, rng.randbytes(32))),
        rng.choice((None, "target", "../../etc")),
        0,
        [("alpha", rng.randrange(1 << 40)), ("beta", 1)],
        rng.choice((None, rng.randbytes(32))),
        rng.random() < 0.2,
        rng.randrange(1 << 40),
    )


def sample_messages(rng: random.Random) -> list[m.Message]:
    """At least one of every message type, with ordinary and edge values."""
    paths = ["%www%/index.html", "/etc/x", "%d%/../escape", "/a\x00b", "%d%/" + "n" * 300, ""]
    recs = [_record(rng, p) for p in paths]
    return [
        m.Hello(m.PROTOCOL_VERSION, "alpha", rng.randbytes(32), rng.randbytes(300), ["www", "etc"], "db-1", True),
        m.Hello(99, "", b"", b"", [], "", False),
        m.Proof(rng.randbytes(64), {"www": rng.randbytes(32)}),
        m.Welcome(["www"]),
        m.Refused("no"),
        m.IndexRequest(0, 4096),
        m.IndexRequest(1 << 40, 0, ["%www%/a", "/b"], True),
        m.IndexBatch(recs, [rng.choice((None, b"x" * 10)) for _ in recs], 42, True),
        m.IndexBatch([], [], 0, False),
        m.ContentRequest(1, "%www%/a", rng.randbytes(32), [rng.randbytes(32) for _ in range(3)]),
        m.ContentData(1, rng.randbytes(200)),
        m.ContentCopy(1, [(rng.randbytes(32), 65536), (b"", 0)]),
        m.ContentEnd(1, None),
        m.ContentEnd(2, "changed meanwhile"),
        m.Ack(7),
        m.PullDone(3, ["%www%/c"], ["problem"]),
        m.Poke(9),
        m.Bye("done"),
    ]


def fuzz_frames(inputs: int, seed: int = 0) -> Report:
    """Mutated and random payloads, framed and unframed, through the frame decoder and message decoder,
    fed in random pieces to a Connection whose state is set at random. Allowed: ProtocolError only.
    Also checked: every message accepted moved the state exactly as the transition table says."""
    rng = random.Random(seed)
    report = Report("frames+messages+session")
    payloads = [m.encode(msg) for msg in sample_messages(rng)]
    states = list(State)
    for i in range(inputs):
        kind = rng.randrange(10)
        if kind == 0:
            wire = rng.randbytes(rng.randint(0, 64))  # pure noise
        elif kind <= 2:
            wire = mutate_bytes(rng, b"".join(frame(p) for p in rng.sample(payloads, rng.randint(1, 3))), payloads)
        else:  # a well-framed but mutated payload, then sometimes more frames after it
            wire = frame(mutate_bytes(rng, rng.choice(payloads), payloads))
            if kind == 9:
                wire += frame(rng.choice(payloads))
        conn = Connection(rng.choice((Role.CLIENT, Role.SERVER)), frame_limit=rng.choice((MAX_FRAME, 64)))
        conn.state = rng.choice(states)
        report.inputs += 1
        try:
            for piece in _pieces(rng, wire):
                conn.receive_data(piece)
                while True:
                    before = conn.state
                    msg = conn.next_event()
                    if msg is None:
                        break
                    expected = TRANSITIONS.get((conn.role, before, PEER, type(msg)))
                    if expected is None or conn.state is not expected:
                        raise AssertionError(f"{type(msg).__name__} moved {before} to {conn.state}")
                    report.accepted += 1
        except ProtocolError:
            report.refused += 1
        except Exception as e:  # anything else is a finding
            report.fail(i, wire, e)
    return report


def _pieces(rng: random.Random, data: bytes) -> Iterator[bytes]:
    """``data`` cut at random places (the network delivers bytes in any grouping)."""
    i = 0
    while i < len(data):
        j = i + rng.randint(1, max(1, len(data) - i))
        yield data[i:j]
        i = j


def fuzz_sessions(inputs: int, seed: int = 0) -> Report:
    """Random sequences of valid messages, sent and received in any order by both roles: a send either
    returns a frame or raises LocalProtocolError, a receive returns the message or raises
    RemoteProtocolError, and the state only ever follows the transition table."""
    rng = random.Random(seed)
    report = Report("session state machine")
    msgs = sample_messages(rng)
    for i in range(inputs):
        conn = Connection(rng.choice((Role.CLIENT, Role.SERVER)))
        seq = [(rng.random() < 0.5, rng.choice(msgs)) for _ in range(rng.randint(1, 12))]
        report.inputs += 1
        try:
            for sending, msg in seq:
                before = conn.state
                who = "me" if sending else PEER
                expected = TRANSITIONS.get((conn.role, before, who, type(msg)))
                try:
                    if sending:
                        conn.send(msg)
                    else:
                        conn.receive_data(frame(m.encode(msg)))
                        got = conn.next_event()
                        if got != msg:
                            raise AssertionError(f"{msg!r} came back as {got!r}")
                except ProtocolError:
                    if expected is not None or conn.state is not before:
                        raise AssertionError(f"{type(msg).__name__} refused in {before}") from None
                    report.refused += 1
                    continue
                if expected is None or conn.state is not expected:
                    raise AssertionError(f"{type(msg).__name__} moved {before} to {conn.state}")
                report.accepted += 1
        except Exception as e:
            report.fail(i, repr(seq), e)
    return report


_PATH_ATOMS: tuple[str, ...] = ("%d%", "%www%", "%nope%", "%", "/", "//", ".", "..", "a", "b c", "\x00", "\n", "é")
_PATH_ATOMS += ("\udcff", "x" * 255, "y" * 256, "/" * 3, "%d%/..", "~", "*", "\\")


def fuzz_paths(inputs: int, seed: int = 0) -> Report:
    """Received logical names through the prefix map: each either raises UnsafePath or maps to a clean
    absolute path at or below a prefix directory (or is an ordinary absolute path), never with a '..' or
    '.' component, a NUL, an empty component, or more than 4,095 bytes."""
    rng = random.Random(seed)
    report = Report("received path names")
    pm = PathMap({"d": "/srv/d", "www": "/var/www", "root": "/"})
    for i in range(inputs):
        name = "".join(rng.choice(_PATH_ATOMS) for _ in range(rng.randint(1, 10)))
        if rng.random() < 0.3:
            name = "".join(chr(rng.randrange(0x20, 0x7F)) for _ in range(rng.randint(0, 30)))
        if rng.random() < 0.05:
            name = "%d%/" + "/".join("z" * 200 for _ in range(21))
        report.inputs += 1
        try:
            real = pm.to_real(name)
        except UnsafePath:
            report.refused += 1
            continue
        except Exception as e:
            report.fail(i, name, e)
            continue
        parts = real.split("/")[1:]
        bad = (
            not real.startswith("/")
            or "\x00" in real
            or len(real.encode("utf-8", "surrogateescape")) > 4095
            or (real != "/" and any(p in ("", ".", "..") for p in parts))
            or (name.startswith("%d%") and not is_within(real, "/srv/d"))
            or (name.startswith("%www%") and not is_within(real, "/var/www"))
        )
        if bad:
            report.fail(i, name, AssertionError(f"{name!r} mapped to unsafe {real!r}"))
        else:
            report.accepted += 1
    return report


CONFIG_CORPUS = (
    """# comment
port 30866;
nossl * *;
group www {
    host web1@10.0.0.11 web2@10.0.0.12:30870 (backup1@[::1]:1);
    key /etc/shoal/web.key;
    include /srv/www /etc/nginx;
    exclude *.swp *~ "/srv/www/a b";
    compare /srv/www/cmp;
    auto younger;
    backup-directory /var/backups/shoal;
    backup-generations 3;
    action {
        pattern /etc/nginx/*;
        exec "nginx -t && systemctl reload nginx";
        logfile "/var/log/a.log";
        do-local;
    }
    interval 10m;
    delay 200ms;
    only-from 10.0.0.0/24 ::1/128;
    watch off;
}
ignore uid gid mod;
database /var/lib/x.db;
tls-dir /etc/shoal/tls;
lock-timeout 30;
prefix data { on web1: /srv/a; on web*: /srv/b; }
""",
    "group g { host a b; key k; include %data%/x; auto first; }\nconfig /etc/shoal/other.cfg;\n",
    'group "q" { host "a"; key "k k"; include "/with space"; exclude "*.tmp"; auto left; }',
    "group g { host a; key k; include /; auto none; interval 1h; fingerprint a " + "ab" * 32 + "; }",
)

_CONFIG_WORDS = (
    "group", "host", "key", "include", "exclude", "compare", "auto", "action", "pattern", "exec", "logfile",
    "do-local", "do-local-only", "backup-directory", "backup-generations", "prefix", "on", "nossl", "config",
    "config-dir", "port", "interval", "delay", "only-from", "ignore", "fingerprint", "younger", "older",
    "bigger", "smaller", "first", "left", "right", "none", "{", "}", "(", ")", ";", ":", "@", "%", '"', "#",
    "\n", " ", "\t", "/", "*", "?", "[", "]", "\\", "0", "-1", "99999", "1.2.3.4/33", "10m", "0ms", "\x00",
    "é", "\r", "'", "%nope%", "a@", "[::1", "on a:", "1e9", "watch", "off", "database", "tempdir", "tls-dir",
    "metrics-listen", "lock-timeout",
)  # fmt: skip


class _NoFiles:
    """A reader for the fuzzer: includes and fragments fail like unreadable files (never touch disk)."""

    def read_text(self, path: str) -> str:
        raise FileNotFoundError(2, "No such file or directory", path)

    def list_fragments(self, directory: str) -> list[str]:
        raise FileNotFoundError(2, "No such file or directory", directory)


def mutate_config(rng: random.Random, text: str) -> str:
    """Token-level edits: delete, duplicate, swap or insert words, cut the text, or change characters."""
    toks = text.replace("\n", " \n ").split(" ")
    for _ in range(rng.randint(1, 5)):
        op = rng.randrange(6)
        n = len(toks)
        if op == 0 and n:
            del toks[rng.randrange(n)]
        elif op == 1 and n:
            i = rng.randrange(n)
            toks.insert(i, toks[i])
        elif op == 2 and n > 1:
            i, j = rng.randrange(n), rng.randrange(n)
            toks[i], toks[j] = toks[j], toks[i]
        elif op == 3:
            toks.insert(rng.randrange(n + 1), rng.choice(_CONFIG_WORDS))
        elif op == 4 and n:
            del toks[rng.randrange(n) :]
        elif op == 5 and n:
            i = rng.randrange(n)
            word = toks[i]
            j = rng.randrange(len(word) + 1)
            toks[i] = word[:j] + rng.choice(_CONFIG_WORDS) + word[j + 1 :]
    return " ".join(toks)


def fuzz_config(inputs: int, seed: int = 0) -> Report:
    """Mutated configs through the parser: only ConfigError may come out, every error names
    file:line:col (or the file), and a config that parses renders to text that parses to the same model."""
    rng = random.Random(seed)
    report = Report("config parser")
    reader = _NoFiles()
    for i in range(inputs):
        text = mutate_config(rng, rng.choice(CONFIG_CORPUS))
        report.inputs += 1
        try:
            spec = parse_text(text, "fuzz.cfg", reader)
        except ConfigError as e:
            if not str(e).startswith(("fuzz.cfg:", "cannot read", "/")):
                report.fail(i, text, AssertionError(f"error does not name its place: {e}"))
            else:
                report.refused += 1
            continue
        except Exception as e:
            report.fail(i, text, e)
            continue
        try:
            again = parse_text(render(spec), "fuzz.cfg", reader)
        except Exception as e:
            report.fail(i, text, AssertionError(f"rendered config does not parse: {e}"))
            continue
        if _strip_pos(again) != _strip_pos(spec):
            report.fail(i, text, AssertionError("rendered config parses to a different model"))
        else:
            report.accepted += 1
    return report


def _strip_pos(spec: object) -> str:
    """The model without source positions (they differ between the original and the rendered text)."""
    return re.sub(r"SourcePos\([^)]*\)", "", repr(spec))


FUZZERS: dict[str, Callable[[int, int], Report]] = {
    "frames": fuzz_frames,
    "sessions": fuzz_sessions,
    "paths": fuzz_paths,
    "config": fuzz_config,
}


def _serving(inputs: int, seed: int = 0) -> Report:
    from shoal.testing.fuzz_serving import fuzz_serving  # (real files, a database, the engine: loaded on use)

    return fuzz_serving(inputs, seed)


FUZZERS["serving"] = _serving
