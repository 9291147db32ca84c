"""The serving side under hostile requests: content and index requests with hostile paths, hashes and
chunk lists, against a real tree, a real state database and the real ``Responder``.

The node (alpha) serves group ``g`` to beta. Its tree holds what may be served (recorded files, one
large enough for delta transfer) and what must never leave it: symlinks to files and directories
outside the root, a symlink up out of the tree, an excluded file, a directory that is swapped for a
symlink to an outside copy after it was recorded (same names, sizes and mtimes: the race a local user
can run), and, next to it, the tree of a group beta is not a member of. Every secret's content carries a
marker. For each input, the invariants are:

- no byte of any secret leaves (no answer, encoded as it would travel, contains a marker);
- every fd the responder reads from is a regular file reachable inside the root without a symlink, and
  not an excluded one (checked by (device, inode) against a walk of the tree as it is at that moment);
- every record in an index answer is one beta may see (group g, not excluded);
- nothing raises (a crash of the responder is a failure).
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shoal.engine import serving
from shoal.engine.exchange import Exchange
from shoal.engine.handshake import Authenticated
from shoal.engine.replica import Replica
from shoal.engine.sync import scan_first
from shoal.fs.apply import Tree
from shoal.fs.config_source import load_node_config
from shoal.fs.keyfile import write_key_file
from shoal.model.records import Record
from shoal.net.identity import create_identity
from shoal.proto import messages as m
from shoal.testing.fuzz import Report
from shoal.transfer import delta

MARKER = b"SECRET-"
_BIG = 300_000  # bytes: above the inline limit, several chunks for delta transfer


class _Capture:
    """A channel that keeps what is sent (the responder only ever sends)."""

    def __init__(self) -> None:
        self.sent: list[m.Message] = []

    async def send(self, msg: m.Message) -> None:
        self.sent.append(msg)


def _secret(n: int, size: int = 64) -> bytes:
    return (MARKER + str(n).encode() + b"-").ljust(size, b"x")


class _Site:
    """The directories of one fuzz run: the tree, the outside, the other group's tree, state."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.tree, self.outside, self.other = base / "tree", base / "outside", base / "other"
        self.aside = base / "aside"
        self.state = base / "state"
        for d in (self.tree / "sub" / "deep", self.tree / "swap", self.outside / "dir", self.outside / "swap"):
            d.mkdir(parents=True)
        self.other.mkdir()
        self.state.mkdir(mode=0o700)
        self.legit = {
            "a.txt": b"alpha's a\n",
            "sub/b.txt": b"b" * 700,
            "sub/deep/c.txt": b"c\n",
            "swap/f.txt": b"f" * 64,
        }
        for rel, data in self.legit.items():
            (self.tree / rel).write_bytes(data)
        big = random.Random(1).randbytes(_BIG)
        (self.tree / "big.bin").write_bytes(big)
        self.legit["big.bin"] = big
        (self.tree / "excluded.txt").write_bytes(_secret(1))
        (self.outside / "secret.txt").write_bytes(_secret(2))
        (self.outside / "dir" / "secret.txt").write_bytes(_secret(3))
        (self.outside / "big.bin").write_bytes(_secret(4, _BIG))
        (self.other / "x").write_bytes(_secret(5))
        # the outside copy of swap/: same name, size and mtime as the recorded file, other content
        copy = self.outside / "swap" / "f.txt"
        copy.write_bytes(_secret(6, 64))
        st = os.stat(self.tree / "swap" / "f.txt")
        os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.symlink(self.outside / "secret.txt", self.tree / "link-secret")
        os.symlink(self.outside / "dir", self.tree / "linkdir")
        os.symlink("../..", self.tree / "sub" / "up")
        os.symlink(self.outside, self.tree / "out")
        key_g, key_h = self.base / "g.key", self.base / "h.key"
        write_key_file(str(key_g))
        write_key_file(str(key_h))
        self.config = self.base / "shoal.cfg"
        self.config.write_text(
            f"group g {{ host alpha beta; key {key_g}; include %d%; exclude %d%/excluded.txt; }}\n"
            f"group h {{ host alpha gamma; key {key_h}; include {self.other}; }}\n"
            f"prefix d {{ on alpha: {self.tree}; }}\n"
        )
        create_identity(str(self.state), "alpha")
        self.swapped = False

    def secrets(self) -> list[Path]:
        return [
            self.tree / "excluded.txt", self.outside / "secret.txt", self.outside / "dir" / "secret.txt",
            self.outside / "big.bin", self.other / "x", self.outside / "swap" / "f.txt",
        ]  # fmt: skip

    def swap(self) -> None:
        """Swap the recorded directory swap/ for a symlink to the outside copy, or back."""
        link = self.tree / "swap"
        if self.swapped:
            link.unlink()
            os.rename(self.aside, link)
        else:
            os.rename(link, self.aside)
            os.symlink(self.outside / "swap", link)
        self.swapped = not self.swapped

    def servable(self) -> set[tuple[int, int]]:
        """(dev, ino) of every regular file reachable in the tree without a symlink, not excluded."""
        out = set()
        for top, dirs, files in os.walk(self.tree):  # os.walk does not descend into symlinked dirs
            dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(top, d))]
            for f in files:
                p = os.path.join(top, f)
                st = os.lstat(p)
                if os.path.isfile(p) and not os.path.islink(p) and p != str(self.tree / "excluded.txt"):
                    out.add((st.st_dev, st.st_ino))
        return out


def _hash_of(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return delta.hash_and_chunks(fd)[0]
    finally:
        os.close(fd)


def _names(site: _Site) -> list[str]:
    t, o = str(site.tree), str(site.outside)
    return [
        "%d%", "%d%/a.txt", "%d%/sub/b.txt", "%d%/sub/deep/c.txt", "%d%/big.bin", "%d%/swap/f.txt",
        "%d%/excluded.txt", "%d%/link-secret", "%d%/linkdir/secret.txt", "%d%/sub/up/outside/secret.txt",
        "%d%/out/secret.txt", "%d%/out/big.bin", "%d%/out/swap/f.txt", "%d%/../outside/secret.txt",
        f"{t}/a.txt", f"{t}/link-secret", f"{o}/secret.txt", f"{site.other}/x", "/etc/shadow",
        f"{site.state}/node.key", "%nope%/a.txt", "%d%/sub/../../outside/secret.txt", "%d%//a.txt", "%d%/./a.txt",
    ]  # fmt: skip


_ATOMS = (
    "%d%", "/", "..", ".", "", "a.txt", "sub", "deep", "up", "out", "linkdir", "link-secret", "secret.txt",
    "swap", "f.txt", "big.bin", "excluded.txt", "\x00", "\\", "%", "etc", "shadow", "x" * 300, "é", "\n",
)  # fmt: skip


def _hostile_name(rng: random.Random, names: list[str]) -> str:
    r = rng.random()
    if r < 0.45:
        return rng.choice(names)
    if r < 0.8:
        return "/".join(rng.choice(_ATOMS) for _ in range(rng.randint(1, 8)))
    name = list(rng.choice(names))
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(name) + 1)
        op = rng.randrange(3)
        if op == 0:
            name.insert(i, rng.choice(("/", "..", "\x00", "%", ".")))
        elif op == 1 and name:
            del name[min(i, len(name) - 1)]
        else:
            name[i:i] = list(rng.choice(_ATOMS))
    return "".join(name)


def _requests(rng: random.Random, site: _Site, hashes: list[bytes], chunk_digests: list[bytes]) -> Iterator[m.Message]:
    names = _names(site)
    digests = [*hashes, b"", b"\0" * 32, b"\xff" * 33]
    i = 0
    while True:
        i += 1
        kind = rng.random()
        if kind < 0.7:
            have = rng.sample(chunk_digests, rng.randint(0, min(6, len(chunk_digests)))) if rng.random() < 0.5 else []
            if rng.random() < 0.1:
                have.append(rng.randbytes(rng.choice((0, 1, 32, 64))))
            yield m.ContentRequest(i, _hostile_name(rng, names), rng.choice(digests), have, rng.choice((-1, 0, 64)))
        elif kind < 0.9:
            paths = [_hostile_name(rng, names) for _ in range(rng.randint(0, 12))]
            yield m.IndexRequest(0, rng.choice((0, 100, 1 << 20, -1)), paths)
        else:
            since = rng.choice((0, 1, 2, 5, 1 << 40, -1))
            yield m.IndexRequest(since, rng.choice((0, 4096, 1 << 20)), [], rng.random() < 0.5, rng.randint(-1, 9))


async def _run(site: _Site, inputs: int, seed: int, report: Report) -> None:
    cfg = load_node_config(str(site.config), "alpha")
    await asyncio.to_thread(scan_first, cfg, str(site.state), None)
    replica = await Replica.open(cfg, str(site.state))
    try:
        records = await replica.db(lambda db: db.all_records())
        hashes = [r.hash for r in records if r.hash is not None] + [_hash_of(p) for p in site.secrets()]
        fd = os.open(site.tree / "big.bin", os.O_RDONLY)
        try:
            chunk_digests = [c.digest for c in delta.chunks_of(fd)][:16]
        finally:
            os.close(fd)
        may_see = {r.path for r in records if r.path == "%d%" or r.path.startswith("%d%/")}
        auth = Authenticated("beta", ["g"], "db-of-beta", True, "fp-of-beta")
        channel = _Capture()
        session = Exchange(replica, channel, auth, client=False, pull=False)  # type: ignore[arg-type]
        responder = serving.Responder(session)
        opened: list[tuple[int, int]] = []
        real_open = serving.open_recorded

        def watched(tree: Tree, real: str, rec: Record) -> int | None:
            fd = real_open(tree, real, rec)
            if fd is not None:
                st = os.fstat(fd)
                opened.append((st.st_dev, st.st_ino))
            return fd

        serving.open_recorded = watched
        rng = random.Random(seed)
        servable = site.servable()
        try:
            for i, req in zip(range(inputs), _requests(rng, site, hashes, chunk_digests), strict=False):
                if i % 97 == 0 and i:
                    await asyncio.to_thread(site.swap)
                    servable = site.servable()
                channel.sent.clear()
                opened.clear()
                report.inputs += 1
                try:
                    if isinstance(req, m.ContentRequest):
                        await responder._serve_content(req)
                    else:
                        assert isinstance(req, m.IndexRequest)
                        await responder._serve_index(req)
                except Exception as e:
                    report.fail(i, repr(req), e)
                    continue
                _check(report, i, req, channel.sent, opened, servable, may_see)
        finally:
            serving.open_recorded = real_open
    finally:
        await replica.close()


def _check(
    report: Report,
    i: int,
    req: m.Message,
    sent: list[m.Message],
    opened: list[tuple[int, int]],
    servable: set[tuple[int, int]],
    may_see: set[str],
) -> None:
    if leaked := [x for x in sent if MARKER in m.encode(x)]:
        report.fail(i, repr(req), AssertionError(f"secret content left: {type(leaked[0]).__name__}"))
        return
    if outside := [o for o in opened if o not in servable]:
        report.fail(i, repr(req), AssertionError(f"read a file outside the tree: inode {outside[0][1]}"))
        return
    records = [r for x in sent if isinstance(x, m.IndexBatch) for r in x.records]
    if hidden := [r.path for r in records if r.path not in may_see]:
        report.fail(i, repr(req), AssertionError(f"an index answer showed {hidden[0]!r}"))
        return
    served = any(isinstance(x, m.ContentData | m.ContentCopy) for x in sent) or bool(records)
    if served:
        report.accepted += 1
    else:
        report.refused += 1


def fuzz_serving(inputs: int, seed: int = 0) -> Report:
    report = Report("serving (content, index)")
    base = Path(tempfile.mkdtemp(prefix="shoal-fuzz-serving-"))
    try:
        asyncio.run(_run(_Site(base), inputs, seed, report))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return report
