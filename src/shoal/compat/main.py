"""``shoal-csync2``: csync2 2.0's command line on the shoal engine (also when installed as ``csync2``).

Owns: running each csync2 mode with shoal's scanner, sessions and records, and csync2's outputs and
exit codes (0 fine, 1 errors, 2 "empty" for -H/-L/-M/-S and "in sync" for -T). Nodes talk shoal's own
protocol to each other (TLS unless ``nossl``, then still the key proof) on csync2's port, 30865.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import logging.handlers
import os
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeVar

from shoal.compat import dirty
from shoal.compat.argv import Invocation, UsageError, parse
from shoal.compat.help import HELP
from shoal.compat.layout import Layout, config_paths, layout
from shoal.compat.listing import difference_lines, dirty_lines, file_lines, hint_lines, nus_diff, order_key
from shoal.config.resolve import NodeConfig
from shoal.engine.pending import peer_matchers
from shoal.errors import IdentityError, ShoalError
from shoal.logsafe import SafeFormatter
from shoal.model.paths import PathMap
from shoal.model.records import Record, Vector

if TYPE_CHECKING:
    from shoal.engine.compare import Difference
    from shoal.engine.replica import Replica
    from shoal.engine.reports import SyncReport
    from shoal.state.db import StateDB

T = TypeVar("T")
log = logging.getLogger("shoal.compat")

CSYNC2_PORT = 30865


def main() -> None:
    sys.exit(run(sys.argv[1:], dict(os.environ)))


def run(argv: Sequence[str], env: dict[str, str]) -> int:
    try:
        inv = parse(list(argv))
    except UsageError as e:
        sys.stdout.write(HELP)
        print(f"shoal-csync2: {e}", file=sys.stderr)
        return 1
    if inv.mode == "help":
        sys.stdout.write(HELP)
        return 1
    try:
        if inv.mode == "keygen":
            from shoal.fs.keyfile import write_key_file

            write_key_file(inv.args[0])
            return 0
        _setup_logging(inv)
        return Run(inv, env).dispatch()
    except ShoalError as e:
        print(f"shoal-csync2: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 1


def _setup_logging(inv: Invocation) -> None:
    level = logging.WARNING if inv.verbose == 0 else logging.INFO if inv.verbose == 1 else logging.DEBUG
    root = logging.getLogger()
    root.setLevel(level)
    # inetd hands us the connection on stdin and stdout (often stderr too): log to syslog there, as -l does
    if (inv.syslog or (inv.mode == "serve" and inv.repeat == 1)) and os.path.exists("/dev/log"):
        handler: logging.Handler = logging.handlers.SysLogHandler("/dev/log")
        handler.setFormatter(SafeFormatter("shoal-csync2[%(process)d]: %(message)s"))
    elif inv.mode == "serve" and inv.repeat == 1:
        handler = logging.NullHandler()
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeFormatter("%(message)s"))
    root.addHandler(handler)


def _with_port(cfg: NodeConfig, port: int) -> NodeConfig:
    """``-p PORT``: every peer is dialled on PORT, and a daemon listens on it."""
    groups = tuple(replace(g, peers=tuple(replace(p, port=port) for p in g.peers)) for g in cfg.groups)
    return replace(cfg, groups=groups, port=port, listen_port=port)


def _only_groups(cfg: NodeConfig, names: list[str]) -> NodeConfig:
    unknown = [n for n in names if n not in {g.name for g in cfg.groups}]
    if unknown:
        raise ShoalError(f"-G: this node is in no group named {', '.join(unknown)}")
    return replace(cfg, groups=tuple(g for g in cfg.groups if g.name in names))


def _ip_literal(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return None


@dataclass
class Errors:
    lines: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.lines.append(line)
        print(f"ERROR: {line}", file=sys.stderr)

    def finish(self, ok: int = 0) -> int:
        if self.lines:
            print(f"Finished with {len(self.lines)} errors.", file=sys.stderr)
            return 1
        return ok


class Run:
    """One invocation: the config, where state lives, and the mode's work."""

    def __init__(self, inv: Invocation, env: dict[str, str]) -> None:
        from shoal.fs.config_source import load_node_config

        self.inv = inv
        config_file, lock_file = config_paths(env, inv.config_name)
        if os.path.exists(lock_file):
            raise ShoalError(f"{lock_file} exists: refusing to run (remove it to allow csync2 runs again)")
        self.node = inv.node or socket.gethostname().lower()
        full = load_node_config(config_file, self.node, default_port=CSYNC2_PORT)
        if inv.port is not None:
            full = _with_port(full, inv.port)
        #: the whole config: scans and -R must know every group, or they would forget records
        self.full = full
        self.cfg = _only_groups(full, inv.groups) if inv.groups else full
        self.layout: Layout = layout(env, self.node, inv.config_name, inv.database, full.database)
        self.pmap = PathMap(dict(full.prefixes))
        self.errors = Errors()
        self._prepared = False

    # -- plumbing ------------------------------------------------------------------------------------

    def dispatch(self) -> int:
        handler = getattr(self, "mode_" + self.inv.mode.replace("-", "_"))
        result: int = handler()
        return result

    def open_db(self) -> StateDB:
        """The node's database, made (and migrated) if need be: a listing on a fresh node lists nothing."""
        from shoal.state.db import StateDB

        self._prepare()
        return StateDB.open(self.layout.db_file, busy_timeout_s=float(self.full.lock_timeout_s))

    def _prepare(self) -> None:
        """The state directory, the node's key and certificate (made on first use: csync2 has no init
        step), and the database's directory."""
        from shoal.net.identity import create_identity, load_identity
        from shoal.state.db import ensure_state_dir

        if self._prepared:
            return
        self._prepared = True
        os.makedirs(os.path.dirname(self.layout.db_file), exist_ok=True)
        ensure_state_dir(self.layout.state_dir)
        try:
            load_identity(self.layout.state_dir)
        except IdentityError:
            create_identity(self.layout.state_dir, self.node)
        if not os.path.exists(self.layout.db_file):
            from shoal.state.db import StateDB

            StateDB.open(self.layout.db_file).close()

    def real_paths(self, args: Sequence[str]) -> list[str]:
        return [os.path.abspath(a) for a in args]

    def logical(self, real: str) -> str:
        return self.pmap.to_logical(real)

    def replica_run(self, work: Callable[[Replica], Awaitable[T]]) -> T:
        """Run ``await work(replica)`` with this node opened as a replica."""
        from shoal.engine.replica import Replica

        self._prepare()

        async def go() -> T:
            replica = await Replica.open(
                self.cfg,
                self.layout.state_dir,
                db_file=self.layout.db_file,
                source_address=_ip_literal(self.inv.node),
            )
            try:
                return await work(replica)
            finally:
                await replica.close()

        return asyncio.run(go())

    def targets(self) -> list[str]:
        peers = sorted(self.cfg.peers())
        unknown = [p for p in self.inv.peers or [] if p not in self.full.peers()]
        if unknown:
            raise ShoalError(f"-P: not a peer of this node: {', '.join(unknown)}")
        return [p for p in peers if self.inv.peers is None or p in self.inv.peers]

    # -- checking ------------------------------------------------------------------------------------

    def _check(self, paths: list[str] | None) -> None:
        """Scan (``paths`` None: every root of the selected groups), then apply -I, -F and -W."""
        from shoal.engine.sync import scan_first

        self._prepare()
        if paths is None and self.inv.groups:
            paths = sorted({r for g in self.cfg.groups for r in g.roots})
        with self.open_db() as db:
            before = db.last_seq()
        result = scan_first(self.full, self.layout.state_dir, paths, self.layout.db_file)
        for problem in result.problems:
            log.info("%s: %s", problem.path, problem.message)
        with self.open_db() as db:
            if self.inv.init:
                dirty.acknowledge_new(db, self.full, before)
            if self.inv.force_new and result.changed_paths:
                db.add_marks("forced", [(self.logical(p), False) for p in result.changed_paths])
        if self.inv.verbose:
            print(
                f"Checked: {result.new} new, {result.changed + result.metadata + result.type_changed} changed, "
                f"{result.deleted} deleted, {result.unchanged} unchanged.",
                file=sys.stderr,
            )
        self._write_dirs(result.changed_paths)

    def _write_dirs(self, changed: list[str]) -> None:
        """``-W FD``: the directories holding changed files, each ended by a NUL byte."""
        for spec in self.inv.accepted:
            if spec.startswith("-W "):
                fd = int(spec[3:])
                dirs = sorted({os.path.dirname(p) or "/" for p in changed})
                try:
                    os.write(fd, b"".join(d.encode("utf-8", "surrogateescape") + b"\0" for d in dirs))
                except OSError as e:
                    self.errors.add(f"-W {fd}: {e.strerror}")

    def mode_check(self) -> int:
        if self.inv.args:
            self._check(self.real_paths(self.inv.args))
        else:
            with self.open_db() as db:
                hints = db.marks("hints")
            if hints:
                self._check([p for p, _ in hints])
                with self.open_db() as db:
                    db.drop_marks("hints", [p for p, _ in hints])
        if self.inv.check_then_update:
            return self._update()
        return self.errors.finish()

    def mode_check_update(self) -> int:
        self._check(self.real_paths(self.inv.args) if self.inv.args else None)
        return self._update()

    def mode_hint(self) -> int:
        with self.open_db() as db:
            db.add_marks("hints", [(p, self.inv.recursive) for p in self.real_paths(self.inv.args)])
        return 0

    def mode_mark(self) -> int:
        real = self.real_paths(self.inv.args)
        self._check(real)
        with self.open_db() as db:
            recs = dirty.records_under(db, [(self.logical(p), self.inv.recursive) for p in real])
            dirty.new_versions(db, self.full, recs, {})
        return self.errors.finish()

    def mode_force(self) -> int:
        with self.open_db() as db:
            db.add_marks("forced", [(self.logical(p), self.inv.recursive) for p in self.real_paths(self.inv.args)])
        return 0

    # -- updating ------------------------------------------------------------------------------------

    def _update(self) -> int:
        from shoal.fs.results import ScanResult

        targets = self.targets()
        if self.inv.dry_run:
            with self.open_db() as db:
                rows = dirty.dirty_rows(db, self.cfg, targets)
            for line in dirty_lines(self.node, rows):
                how, _, peer, name = line.split("\t", 3)
                print(f"would update {peer}: {name}{' (forced)' if how == 'force' else ''}")
            return self.errors.finish()

        async def work(replica: Replica) -> tuple[list[tuple[str, bool]], SyncReport]:
            from shoal.engine.sync import sync_once

            forced = await replica.db(dirty.forced_paths)
            if forced:
                await self._settle_forced(replica, forced, targets)
            report = await sync_once(replica, peers=targets, push_only=True, scanned=ScanResult())
            return forced, report

        forced, report = self.replica_run(work)
        reached = set()
        with self.open_db() as db:
            for sess in report.sessions:
                if sess.error:
                    self.errors.add(f"{sess.peer}: {sess.error}")
                    continue
                reached.add(sess.peer)
                if self.inv.verbose:
                    print(f"Updated {sess.peer}: {sess.files_out} files sent.", file=sys.stderr)
                if sess.peer_conflicts:
                    ours = db.get_records(sess.peer_conflicts)
                    db.set_unsettled(sess.peer, [(p, ours[p].seq) for p in sess.peer_conflicts if p in ours])
                for problem in sess.peer_problems:
                    self.errors.add(f"{sess.peer}: {problem}")
            for name, why in sorted(report.unreachable.items()):
                self.errors.add(f"connection to remote host {name} failed: {why}")
            for path, peer in db.unsettled():
                if peer in targets:
                    self.errors.add(
                        f"{peer}: {path} is also changed there (conflict); to make this node's version win, "
                        f"run: shoal-csync2 -f {self.pmap.to_real_safe(path) or path} and update again"
                    )
            for what in report.open_conflicts:
                self.errors.add(f"open conflict: {what}")
            if forced and reached >= set(targets):
                db.drop_marks("forced", [p for p, _ in forced])
        return self.errors.finish()

    async def _settle_forced(self, replica: Replica, forced: list[tuple[str, bool]], targets: list[str]) -> None:
        """Forced paths become new versions of ours that include what every reachable peer holds of them."""
        from shoal.engine.compare import PeerView
        from shoal.net.transport import PeerClosed, PeerUnreachable

        recs = await replica.db(lambda db: dirty.records_under(db, forced))
        if not recs:
            return
        include: dict[str, list[Vector]] = {}

        async def fetch(peer: str) -> None:
            try:
                async with PeerView(replica, peer) as view:
                    for path, rec in (await view.records([r.path for r in recs])).items():
                        include.setdefault(path, []).append(rec.vector)
            except (PeerUnreachable, PeerClosed, ShoalError) as e:
                log.info("forcing: could not read %s's versions: %s", peer, e)

        await asyncio.gather(*(fetch(p) for p in targets))
        await replica.db(lambda db: dirty.new_versions(db, replica.cfg, recs, include))

    def mode_update(self) -> int:
        return self._update()

    # -- listings ------------------------------------------------------------------------------------

    def _print(self, lines: list[str]) -> int:
        out = sys.stdout.buffer
        for line in lines:
            out.write(line.encode("utf-8", "surrogateescape") + b"\n")
        out.flush()
        return 0 if lines else 2

    def mode_list_hints(self) -> int:
        with self.open_db() as db:
            return self._print(hint_lines(db.marks("hints")))

    def mode_list_files(self) -> int:
        with self.open_db() as db:
            return self._print(file_lines(db.all_records(include_deleted=False), self.full.ignore))

    def mode_list_dirty(self) -> int:
        with self.open_db() as db:
            return self._print(dirty_lines(self.node, dirty.dirty_rows(db, self.cfg)))

    def mode_list_pair(self) -> int:
        me, peer = (a.lower() for a in self.inv.args)
        if me != self.node:
            raise ShoalError(f"-S {me} {peer}: this node is {self.node}")
        if peer not in self.cfg.peers():
            raise ShoalError(f"-S {me} {peer}: {peer} is not a peer of this node")
        matcher = peer_matchers(self.cfg)[peer]
        with self.open_db() as db:
            recs = [
                r
                for r in db.all_records(include_deleted=False)
                if (real := self.pmap.to_real_safe(r.path)) is not None and matcher.is_managed(real)
            ]
        return self._print(file_lines(recs, self.full.ignore))

    def mode_compare_list(self) -> int:
        """``-o``: the managed names (compare patterns included) at the given paths, below them with -r."""
        from shoal.model.patterns import Matcher

        groups = self.cfg.groups
        if self.inv.peers is not None:
            groups = tuple(g for g in groups if any(p.name in self.inv.peers for p in g.peers))
        matcher = Matcher([(g.name, g.rules) for g in groups])
        found: list[str] = []
        for top in self.real_paths(self.inv.args):
            if not os.path.lexists(top):
                continue
            if matcher.is_managed(top, compare_mode=True):
                found.append(top)
            if not (self.inv.recursive and os.path.isdir(top) and not os.path.islink(top)):
                continue
            for here, dirs, files in os.walk(top):
                dirs[:] = [d for d in dirs if matcher.step_into_any(os.path.join(here, d))]
                for name in (*dirs, *files):
                    path = os.path.join(here, name)
                    if matcher.is_managed(path, compare_mode=True):
                        found.append(path)
        names = sorted({self.logical(p) for p in found}, key=order_key)
        return self._print(names) if names else 0

    # -- comparing -----------------------------------------------------------------------------------

    def mode_test(self) -> int:
        args = self.inv.args
        path: str | None = None
        peers = self.targets()
        if len(args) in (2, 3):
            me, peer = args[0].lower(), args[1].lower()
            if me != self.node:
                raise ShoalError(f"-T {me} {peer}: this node is {self.node}")
            if peer not in self.cfg.peers():
                raise ShoalError(f"-T {me} {peer}: {peer} is not a peer of this node")
            peers = [peer]
        if len(args) in (1, 3):
            path = self.logical(self.real_paths([args[-1]])[0])
        from shoal.engine.sync import scan_first

        scan_first(self.full, self.layout.state_dir, [self.pmap.to_real(path)] if path else None, self.layout.db_file)
        found_any = False

        async def work(replica: Replica) -> None:
            nonlocal found_any
            for peer in peers:
                try:
                    found_any |= await self._test_peer(replica, peer, path)
                except (ShoalError, OSError) as e:
                    self.errors.add(f"connection to remote host {peer} failed: {e}")

        self.replica_run(work)
        return self.errors.finish(0 if found_any else 2)

    async def _test_peer(self, replica: Replica, peer: str, path: str | None) -> bool:
        from shoal.engine.compare import PeerView, differences, local_content, remote_content, under

        async with PeerView(replica, peer) as view:
            everything = await view.records()
            theirs = under(path, {p: r for p, r in everything.items() if not r.deleted})
            ours_all = await replica.db(lambda db: db.all_records(include_deleted=False))
            ours = under(path, {r.path: r for r in ours_all if view.shared(r.path)})
            diffs = differences(ours, theirs, self.full.ignore)
            if self.inv.repeat >= 2:
                out = sys.stdout.buffer
                for d in sorted(diffs, key=lambda d: order_key(d.path)):
                    mine = local_content(replica, ours.get(d.path)) or b""
                    other = await remote_content(view, theirs.get(d.path)) or b""
                    text = nus_diff(f"{peer}:{d.path}", f"{self.node}:{d.path}", other, mine)
                    out.write(text.encode("utf-8", "surrogateescape"))
                out.flush()
            else:
                self._print(difference_lines(self.node, peer, [(d.code, d.path) for d in diffs]))
            if self.inv.init and diffs:
                await self._mark_differences(replica, diffs, ours, everything)
        return bool(diffs)

    async def _mark_differences(
        self, replica: Replica, diffs: list[Difference], ours: dict[str, Record], theirs: dict[str, Record]
    ) -> None:
        """``-TI``: our side of every difference goes out at the next update; with -X, so does the
        deletion of what only the peer holds."""
        mine = [ours[d.path] for d in diffs if d.code in ("X", "L")]
        include = {p: [theirs[p].vector] for p in (r.path for r in mine) if p in theirs}
        only_there = [theirs[d.path] for d in diffs if d.code == "R"] if self.inv.removals else []

        def mark(db: StateDB) -> None:
            dirty.new_versions(db, self.full, mine, include)
            dirty.tombstones(db, self.full, only_there)

        await replica.db(mark)

    # -- housekeeping --------------------------------------------------------------------------------

    def mode_remove_stale(self) -> int:
        with self.open_db() as db:
            stale = dirty.unmanaged(db, self.full)
            if stale:
                db.apply_scan([], forget=stale)
        if self.inv.verbose:
            print(f"Removed {len(stale)} entries no group manages any more.", file=sys.stderr)
        return 0

    # -- serving -------------------------------------------------------------------------------------

    def _listen_host(self) -> str | None:
        if self.full.listen_address not in ("0.0.0.0", "::"):  # noqa: S104
            return None  # the node's host entry names its address (name@addr)
        if self.inv.node is None:
            return None
        literal = _ip_literal(self.inv.node)
        if literal is not None:
            return literal
        try:
            return str(socket.getaddrinfo(self.inv.node, None, socket.AF_INET)[0][4][0])
        except OSError:
            return None

    def mode_serve(self) -> int:
        from shoal.engine import daemon

        host = self._listen_host()
        if self.inv.repeat == 1:
            try:
                sock = socket.socket(fileno=os.dup(0))
            except OSError as e:
                raise ShoalError(f"-i: standard input is not a socket (start me from inetd): {e.strerror}") from None

            async def one(replica: Replica) -> int:
                return await daemon.serve_one(replica, sock=sock)

            result: int = self.replica_run(one)
            return result
        if self.inv.repeat == 3:

            async def once(replica: Replica) -> int:
                return await daemon.serve_one(replica, host=host)

            result = self.replica_run(once)
            return result

        def reload() -> NodeConfig:
            return Run(self.inv, dict(os.environ)).cfg

        async def forever(replica: Replica) -> int:
            return await daemon.serve(replica, host=host, watch=False, reload=reload)

        result = self.replica_run(forever)
        return result
