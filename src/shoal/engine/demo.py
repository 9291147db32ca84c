"""``shoal demo``: a 3-node cluster laid out on loopback in a temporary directory.

Owns: building a throw-away cluster (config, group key, node identities, data directories) from the
embedded defaults and walking a newcomer through it. Live replication between the nodes joins the demo
with the sync engine; until then it shows the parts that exist: config, identities, scanning, records.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from shoal.config.describe import describe_group
from shoal.fs.config_source import load_node_config
from shoal.fs.keyfile import write_key_file
from shoal.fs.scan import Scanner
from shoal.net.identity import create_identity, format_fingerprint
from shoal.state.db import DB_NAME, StateDB, ensure_state_dir

NODES = ("alpha", "beta", "gamma")

CONFIG_TEMPLATE = """\
# A three-node shoal cluster on one machine: each node has its own loopback address, port,
# state directory and (through the 'data' prefix) its own copy of the synchronized tree.
group demo {{
    host alpha@127.0.0.1:{port_a} beta@127.0.0.1:{port_b} gamma@127.0.0.1:{port_c};
    key demo.key;
    include %data%;
    exclude *.swp *~ %data%/cache;
    auto younger;
    backup-directory {root}/backups;
    backup-generations 3;
    delay 50ms;
}}
prefix data {{
    on alpha: {root}/alpha/data;
    on beta:  {root}/beta/data;
    on gamma: {root}/gamma/data;
}}
"""


def run_demo(say: Callable[[str], None], keep: bool = False, base_port: int = 31866) -> int:
    root = tempfile.mkdtemp(prefix="shoal-demo-")
    try:
        cfg_path = os.path.join(root, "shoal.cfg")
        with open(cfg_path, "w", encoding="utf-8") as f:
            f.write(CONFIG_TEMPLATE.format(root=root, port_a=base_port, port_b=base_port + 1, port_c=base_port + 2))
        write_key_file(os.path.join(root, "demo.key"))
        say(f"cluster laid out in {root}")
        for node in NODES:
            state = os.path.join(root, node, "state")
            ensure_state_dir(state)
            os.makedirs(os.path.join(root, node, "data"))
            ident = create_identity(state, node)
            say(f"  {node:<6} fingerprint {format_fingerprint(ident.fingerprint)[:23]}...")

        cfg = load_node_config(cfg_path, "alpha")
        say("")
        say("alpha's view of the config:")
        for line in describe_group(cfg, cfg.groups[0]):
            say("  " + line)

        data = os.path.join(root, "alpha", "data")
        os.makedirs(os.path.join(data, "site", "css"))
        os.makedirs(os.path.join(data, "cache"))
        files = {
            "site/index.html": "<h1>hello from alpha</h1>\n",
            "site/css/main.css": "h1 { color: teal }\n",
            "site/index.html.swp": "editor junk\n",
            "cache/tmp.bin": "not synchronized\n",
        }
        for rel, text in files.items():
            with open(os.path.join(data, rel), "w", encoding="utf-8") as f:
                f.write(text)
        os.symlink("index.html", os.path.join(data, "site", "home.html"))

        with StateDB.open(os.path.join(root, "alpha", "state", DB_NAME)) as db:
            first = Scanner(db, cfg).scan()
            say("")
            say(
                f"alpha scanned its tree: {first.new} new records ({first.hashed_files} files hashed); "
                "*.swp and cache/ are excluded"
            )
            for path in sorted(first.changed_paths):
                say(f"  + {path}")
            with open(os.path.join(data, "site", "index.html"), "a", encoding="utf-8") as f:
                f.write("<p>edited</p>\n")
            os.remove(os.path.join(data, "site", "css", "main.css"))
            second = Scanner(db, cfg).scan()
            say(
                f"after an edit and a delete: {second.changed} changed, {second.deleted} deleted, "
                f"{second.unchanged} unchanged"
            )
            for rec in db.all_records():
                vec = ", ".join(f"{n}={c}" for n, c in rec.vector)
                say(f"  {'deleted ' if rec.deleted else ''}{rec.path}  [{vec}]")
        say("")
        say("live replication to beta and gamma arrives with the sync engine (shoal sync / shoal daemon).")
        return 0
    finally:
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
