"""Printing a config model and parsing it back gives the same model."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.config.model import (
    AUTO_POLICIES,
    IGNORE_WORDS,
    ActionSpec,
    ConfigSpec,
    FingerprintPin,
    GroupSpec,
    HostSpec,
    NosslRule,
    PatternRule,
    PrefixEntry,
    PrefixSpec,
)
from shoal.config.parser import parse_text
from shoal.config.printer import render

# Any character but the double quote (config strings have no escapes), including the punctuation and
# keywords the printer must quote.
_chars = st.characters(blacklist_characters='"', blacklist_categories=("Cs",))
text = st.one_of(
    st.text(_chars, min_size=1, max_size=12),
    st.sampled_from(["host", "include", "on", "port", "delay", "a:b", "x:", "#c", "a;b", "{", "@", "%p%/x"]),
)
lower = text.map(str.lower).filter(bool)
pattern = text.filter(lambda s: not s.endswith("/"))
abs_path = st.text(_chars, min_size=1, max_size=10).map(lambda s: "/" + s.strip("/")).filter(lambda s: s != "/")
# What the parser accepts after '@': an IPv4 or IPv6 address, or a host name.
address = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"\A[a-z0-9_]([a-z0-9_.-]{0,8}[a-z0-9_.])?\Z"),
)
network = st.builds(
    lambda a, n: str(ipaddress.ip_network(f"{a}/{n}", strict=False)), st.ip_addresses(v=4), st.integers(0, 32)
)

hosts = st.builds(
    HostSpec, name=lower, address=st.none() | address, port=st.none() | st.integers(1, 65535), slave=st.booleans()
).filter(lambda h: h.address is not None or h.port is None)
actions = st.builds(
    lambda pats, execs, logfile, local, only: ActionSpec(tuple(pats), tuple(execs), logfile, local or only, only),
    st.lists(pattern, max_size=3),
    st.lists(text, max_size=3),
    st.none() | text,
    st.booleans(),
    st.booleans(),
)
groups = st.builds(
    GroupSpec,
    name=text,
    hosts=st.lists(hosts, max_size=4).map(tuple),
    key=st.none() | text,
    rules=st.lists(st.builds(PatternRule, st.sampled_from(["include", "exclude", "compare"]), pattern), max_size=5).map(
        tuple
    ),
    auto=st.none() | st.sampled_from(AUTO_POLICIES),
    backup_directory=st.none() | text,
    backup_generations=st.none() | st.integers(0, 1000),
    actions=st.lists(actions, max_size=2).map(tuple),
    interval_ms=st.none() | st.integers(0, 10**9),
    watch=st.none() | st.booleans(),
    delay_ms=st.none() | st.integers(0, 10**6),
    only_from=st.lists(network, max_size=3).map(tuple),
    fingerprints=st.lists(
        st.builds(FingerprintPin, lower, st.binary(min_size=32, max_size=32).map(bytes.hex)), max_size=2
    ).map(tuple),
    allow_setuid=st.booleans(),
    allow_devices=st.booleans(),
)
prefixes = st.builds(
    PrefixSpec, name=text, entries=st.lists(st.builds(PrefixEntry, lower, abs_path), max_size=3).map(tuple)
)
configs = st.builds(
    ConfigSpec,
    groups=st.lists(groups, max_size=4, unique_by=lambda g: g.name).map(tuple),
    prefixes=st.lists(prefixes, max_size=2, unique_by=lambda p: p.name).map(tuple),
    nossl=st.lists(st.builds(NosslRule, text, text), max_size=2).map(tuple),
    ignore=st.lists(st.sampled_from(IGNORE_WORDS), unique=True, max_size=3).map(tuple),
    lock_timeout_s=st.none() | st.integers(0, 86_400),
    database=st.none() | text,
    tempdir=st.none() | text,
    port=st.none() | st.integers(1, 65535),
    default_key=st.none() | text,
    tls_dir=st.none() | text,
    metrics_listen=st.none() | st.builds(lambda a, p: f"{a}:{p}", st.ip_addresses(v=4), st.integers(1, 65535)),
    no_cygwin_lowercase=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(configs)
def test_print_parse_round_trip(cfg: ConfigSpec) -> None:
    printed = render(cfg)
    assert parse_text(printed, "printed.cfg") == cfg
    assert render(parse_text(printed, "printed.cfg")) == printed
