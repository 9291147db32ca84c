"""``shoal ls [--json]``: the records this node knows."""

from __future__ import annotations

import datetime
import json
import stat

import click

from shoal.cli.context import AppContext
from shoal.model.records import Kind, Record

_KIND_CHAR = {Kind.FILE: "-", Kind.DIR: "d", Kind.SYMLINK: "l", Kind.FIFO: "p", Kind.CHR: "c", Kind.BLK: "b"}


def record_json(r: Record) -> dict[str, object]:
    return {
        "path": r.path,
        "kind": r.kind.name.lower(),
        "deleted": r.deleted,
        "size": r.size_bytes,
        "mode": f"{r.mode:04o}",
        "uid": r.uid,
        "gid": r.gid,
        "user": r.user,
        "group": r.group,
        "mtime_ns": r.mtime_ns,
        "hash": r.hash.hex() if r.hash else None,
        "target": r.target,
        "rdev": r.rdev,
        "vector": dict(r.vector),
        "seq": r.seq,
    }


def _line(r: Record) -> str:
    perms = stat.filemode(r.mode)[1:]
    when = datetime.datetime.fromtimestamp(r.mtime_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")
    owner = f"{r.user or r.uid}:{r.group or r.gid}"
    digest = r.hash.hex()[:12] if r.hash else "-"
    vec = ",".join(f"{n}={c}" for n, c in r.vector)
    name = f"{r.path} -> {r.target}" if r.target is not None else r.path
    flag = "deleted " if r.deleted else ""
    return f"{_KIND_CHAR[r.kind]}{perms} {owner:<12} {r.size_bytes:>10} {when} {digest:<12} {flag}{name}  [{vec}]"


@click.command("ls")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.option("--all", "show_all", is_flag=True, help="Include deletion records (tombstones).")
@click.pass_obj
def ls(app: AppContext, as_json: bool, show_all: bool) -> int:
    """List the records of this node."""
    with app.open_db(readonly=True) as db:
        records = db.all_records(include_deleted=show_all or as_json)
    if as_json:
        click.echo(json.dumps([record_json(r) for r in records], ensure_ascii=False))
        return 0
    for r in records:
        click.echo(_line(r))
    return 0
