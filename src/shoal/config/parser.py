"""Recursive-descent parser for csync2 2.0 configuration files plus shoal's extensions.

Owns: the grammar, the arity of every keyword, and the wording of syntax errors (``file:line:col:
expected X, found Y``). Must not: touch the disk (files come through a :class:`SourceReader`), or apply
the config to a node (resolve.py does that).

Grammar (``[]`` optional, ``*`` zero or more, ``+`` one or more; VALUE is a quoted string or a bare word
csync2 does not reserve)::

    config      := top*
    top         := 'group' [VALUE] '{' gstmt* '}'
                 | 'prefix' VALUE '{' ('on' VALUE ':' VALUE ';')* '}'
                 | 'nossl' VALUE VALUE ';'     | 'ignore' ('uid'|'gid'|'mod')* ';'
                 | 'database' VALUE ';'        | 'tempdir' VALUE ';'      | 'lock-timeout' INT ';'
                 | 'no-cygwin-lowercase' ';'   | 'config' VALUE ';'
                 | 'port' INT ';'  | 'config-dir' VALUE ';'  | 'tls-dir' VALUE ';'   (extensions)
                 | 'key' VALUE ';' | 'metrics-listen' VALUE ';'                       (extensions)
    gstmt       := 'host' hostitem+ ';'  | ('include'|'exclude'|'compare') VALUE+ ';'
                 | 'key' VALUE ';' | 'auto' POLICY ';' | 'backup-directory' VALUE ';'
                 | 'backup-generations' INT ';' | 'action' '{' astmt* '}'
                 | 'interval' DURATION ';' | 'watch' ('on'|'off') ';' | 'delay' DURATION ';'   (extensions)
                 | 'only-from' CIDR+ ';' | 'fingerprint' VALUE SHA256 ';'                      (extensions)
                 | 'allow' ('setuid'|'devices')+ ';'                                           (extension)
    hostitem    := host | '(' host+ ')'          host := VALUE ['@' VALUE]
    astmt       := 'pattern' VALUE+ ';' | 'exec' VALUE+ ';' | 'logfile' VALUE ';'
                 | 'do-local' ';' | 'do-local-only' ';'

Extension keywords are recognised only where a statement starts, so csync2 configs that use those words
as patterns keep their meaning.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from typing import Protocol

from shoal.config.model import (
    ALLOW_WORDS,
    AUTO_POLICIES,
    IGNORE_WORDS,
    ActionSpec,
    AutoPolicy,
    ConfigSpec,
    FingerprintPin,
    GroupSpec,
    HostSpec,
    IgnoreWord,
    NosslRule,
    PatternRule,
    PrefixEntry,
    PrefixSpec,
    RuleKind,
    SourcePos,
)
from shoal.config.tokens import Kind, Token, tokenize
from shoal.errors import ConfigError

MAX_INCLUDE_DEPTH = 10

TOP_KEYWORDS = (
    "group",
    "prefix",
    "nossl",
    "ignore",
    "database",
    "tempdir",
    "lock-timeout",
    "no-cygwin-lowercase",
    "config",
    "port",
    "config-dir",
    "tls-dir",
    "key",
    "metrics-listen",
)
GROUP_KEYWORDS = (
    "host",
    "include",
    "exclude",
    "compare",
    "key",
    "auto",
    "backup-directory",
    "backup-generations",
    "action",
    "interval",
    "watch",
    "delay",
    "only-from",
    "fingerprint",
    "allow",
)
ACTION_KEYWORDS = ("pattern", "exec", "logfile", "do-local", "do-local-only")

_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, None: 1000}
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class SourceReader(Protocol):
    """How the parser reaches other files: ``config`` includes and ``config-dir`` fragments."""

    def read_text(self, path: str) -> str:
        """Return the file's text; raise OSError when it cannot be read."""
        ...

    def list_fragments(self, directory: str) -> list[str]:
        """Return the paths of the ``*.cfg`` files in ``directory``, sorted; raise OSError if unreadable."""
        ...


def _pos(tok: Token) -> SourcePos:
    return SourcePos(tok.file, tok.line, tok.col)


def _fail(tok: Token, message: str) -> ConfigError:
    return ConfigError(f"{tok.where()}: {message}")


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    import difflib  # only on the error path

    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class _GroupDraft:
    name: str
    pos: SourcePos
    hosts: list[HostSpec] = field(default_factory=list)
    key: str | None = None
    key_pos: SourcePos | None = None
    rules: list[PatternRule] = field(default_factory=list)
    auto: AutoPolicy | None = None
    auto_pos: SourcePos | None = None
    backup_directory: str | None = None
    backup_generations: int | None = None
    actions: list[ActionSpec] = field(default_factory=list)
    interval_ms: int | None = None
    watch: bool | None = None
    delay_ms: int | None = None
    only_from: list[str] = field(default_factory=list)
    fingerprints: list[FingerprintPin] = field(default_factory=list)
    allow_setuid: bool = False
    allow_devices: bool = False
    seen: dict[str, SourcePos] = field(default_factory=dict)

    def freeze(self) -> GroupSpec:
        return GroupSpec(
            name=self.name,
            hosts=tuple(self.hosts),
            key=self.key,
            rules=tuple(self.rules),
            auto=self.auto,
            backup_directory=self.backup_directory,
            backup_generations=self.backup_generations,
            actions=tuple(self.actions),
            interval_ms=self.interval_ms,
            watch=self.watch,
            delay_ms=self.delay_ms,
            only_from=tuple(self.only_from),
            fingerprints=tuple(self.fingerprints),
            allow_setuid=self.allow_setuid,
            allow_devices=self.allow_devices,
            pos=self.pos,
            key_pos=self.key_pos or self.pos,
        )


@dataclass
class _Draft:
    """Everything read so far, across includes and fragments."""

    groups: list[GroupSpec] = field(default_factory=list)
    group_pos: dict[str, SourcePos] = field(default_factory=dict)
    prefixes: list[PrefixSpec] = field(default_factory=list)
    prefix_pos: dict[str, SourcePos] = field(default_factory=dict)
    nossl: list[NosslRule] = field(default_factory=list)
    ignore: list[IgnoreWord] = field(default_factory=list)
    lock_timeout_s: int | None = None
    database: str | None = None
    tempdir: str | None = None
    port: int | None = None
    default_key: str | None = None
    default_key_pos: SourcePos | None = None
    tls_dir: str | None = None
    metrics_listen: str | None = None
    no_cygwin_lowercase: bool = False
    files: list[str] = field(default_factory=list)
    seen: dict[str, SourcePos] = field(default_factory=dict)
    unnamed_groups: int = 0

    def freeze(self) -> ConfigSpec:
        return ConfigSpec(
            groups=tuple(self.groups),
            prefixes=tuple(self.prefixes),
            nossl=tuple(self.nossl),
            ignore=tuple(self.ignore),
            lock_timeout_s=self.lock_timeout_s,
            database=self.database,
            tempdir=self.tempdir,
            port=self.port,
            default_key=self.default_key,
            tls_dir=self.tls_dir,
            metrics_listen=self.metrics_listen,
            no_cygwin_lowercase=self.no_cygwin_lowercase,
            files=tuple(self.files),
            default_key_pos=self.default_key_pos or SourcePos("<default>", 0, 0),
        )


class _Parser:
    def __init__(self, tokens: list[Token], draft: _Draft, reader: SourceReader | None, depth: int) -> None:
        self.toks = tokens
        self.i = 0
        self.draft = draft
        self.reader = reader
        self.depth = depth

    # -- token helpers -------------------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def advance(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind is not Kind.EOF:
            self.i += 1
        return tok

    def expect(self, kind: Kind, context: str) -> Token:
        tok = self.tok
        if tok.kind is not kind:
            raise _fail(tok, f"expected '{kind.value}' {context}, found {tok.describe()}")
        return self.advance()

    def value(self, what: str) -> Token:
        tok = self.tok
        if not tok.is_value or tok.text == "":
            found = "an empty string" if tok.kind is Kind.STRING else tok.describe()
            raise _fail(tok, f"expected {what}, found {found}")
        return self.advance()

    def values(self, what: str, plural: str, keyword: str) -> list[Token]:
        """One or more values up to the closing ';'."""
        out = [self.value(f"{what} after '{keyword}'")]
        while self.tok.is_value:
            out.append(self.advance())
        self.end(f"after the {plural} of '{keyword}'")
        return out

    def end(self, context: str) -> None:
        self.expect(Kind.SEMI, context)

    def once(self, seen: dict[str, SourcePos], keyword: Token, scope: str) -> None:
        first = seen.get(keyword.text)
        if first is not None:
            raise _fail(keyword, f"'{keyword.text}' given twice {scope} (first at {first})")
        seen[keyword.text] = _pos(keyword)

    def integer(self, what: str, low: int, high: int) -> int:
        tok = self.value(what)
        if not tok.text.isdigit() or not low <= int(tok.text) <= high:
            raise _fail(tok, f"expected {what} (a whole number from {low} to {high}), found {tok.describe()}")
        return int(tok.text)

    def duration_ms(self, keyword: str) -> int:
        tok = self.value(f"a duration after '{keyword}'")
        m = _DURATION.match(tok.text)
        if not m:
            raise _fail(
                tok, f"expected a duration such as 500ms, 30s, 10m, 2h or 1d after '{keyword}', found {tok.describe()}"
            )
        return int(m.group(1)) * _UNIT_MS[m.group(2)]

    # -- top level -----------------------------------------------------------------------------------

    def parse_config(self) -> None:
        while self.tok.kind is not Kind.EOF:
            self.top_statement()

    def top_statement(self) -> None:
        kw = self.tok
        d = self.draft
        if kw.kind is not Kind.WORD:
            raise _fail(kw, f"expected a statement such as 'group', found {kw.describe()}")
        word = kw.text
        if word not in TOP_KEYWORDS:
            hint = (
                " (this statement belongs inside a group)" if word in GROUP_KEYWORDS else _suggest(word, TOP_KEYWORDS)
            )
            raise _fail(kw, f"unknown statement '{word}'{hint}")
        self.advance()
        if word == "group":
            self.group()
        elif word == "prefix":
            self.prefix()
        elif word == "nossl":
            a = self.value("a host pattern after 'nossl'")
            b = self.value("a second host pattern after 'nossl'")
            self.end("after the two host patterns of 'nossl'")
            d.nossl.append(NosslRule(a.text, b.text, _pos(kw)))
        elif word == "ignore":
            while self.tok.is_value:
                t = self.advance()
                if t.text not in IGNORE_WORDS:
                    raise _fail(t, f"unknown 'ignore' word '{t.text}' (use uid, gid or mod)")
                ig: IgnoreWord = t.text
                if ig not in d.ignore:
                    d.ignore.append(ig)
            self.end("after 'ignore' words")
        elif word == "database":
            t = self.value("a database path or URL after 'database'")
            self.end("after database path")
            if d.database is None:  # csync2: the first one wins
                d.database = t.text
        elif word == "tempdir":
            d.tempdir = self.value("a directory after 'tempdir'").text
            self.end("after tempdir path")
        elif word == "lock-timeout":
            d.lock_timeout_s = self.integer("seconds after 'lock-timeout'", 0, 86_400)
            self.end("after lock-timeout seconds")
        elif word == "no-cygwin-lowercase":
            d.no_cygwin_lowercase = True
            self.end("after 'no-cygwin-lowercase'")
        elif word == "config":
            t = self.value("a file name after 'config'")
            self.end("after config file name")
            self.include(t)
        elif word == "config-dir":
            t = self.value("a directory after 'config-dir'")
            self.end("after config-dir path")
            self.include_dir(t)
        else:
            self.once(d.seen, kw, "at top level")
            if word == "port":
                d.port = self.integer("a port number after 'port'", 1, 65535)
                self.end("after port number")
            elif word == "tls-dir":
                d.tls_dir = self.value("a directory after 'tls-dir'").text
                self.end("after tls-dir path")
            elif word == "key":
                t = self.value("a key file after 'key'")
                d.default_key, d.default_key_pos = t.text, _pos(t)
                self.end("after key path")
            else:  # metrics-listen
                t = self.value("ADDRESS:PORT after 'metrics-listen'")
                _split_address(t, default_port=None)
                d.metrics_listen = t.text
                self.end("after metrics-listen address")

    def include(self, name: Token) -> None:
        if self.reader is None:
            raise _fail(name, "'config' includes are not available here")
        if self.depth >= MAX_INCLUDE_DEPTH:
            raise _fail(name, f"'config' includes nested deeper than {MAX_INCLUDE_DEPTH}")
        path = posixpath.join(posixpath.dirname(name.file), name.text)
        try:
            text = self.reader.read_text(path)
        except OSError as e:
            raise _fail(name, f"cannot read included config {path}: {e.strerror or e}") from None
        parse_into(text, path, self.draft, self.reader, self.depth + 1)

    def include_dir(self, name: Token) -> None:
        if self.reader is None:
            raise _fail(name, "'config-dir' is not available here")
        directory = posixpath.join(posixpath.dirname(name.file), name.text)
        try:
            paths = self.reader.list_fragments(directory)
        except OSError as e:
            raise _fail(name, f"cannot read config-dir {directory}: {e.strerror or e}") from None
        for path in paths:
            try:
                text = self.reader.read_text(path)
            except OSError as e:
                raise _fail(name, f"cannot read config fragment {path}: {e.strerror or e}") from None
            parse_fragment_into(text, path, self.draft, self.reader, self.depth + 1)

    def prefix(self) -> None:
        name = self.value("a prefix name after 'prefix'")
        first = self.draft.prefix_pos.get(name.text)
        if first is not None:
            raise _fail(name, f"prefix '{name.text}' defined twice (first at {first})")
        self.draft.prefix_pos[name.text] = _pos(name)
        opened = self.expect(Kind.LBRACE, f"after prefix name '{name.text}'")
        entries: list[PrefixEntry] = []
        while not self.tok.is_word("on"):
            if self.tok.kind is Kind.RBRACE:
                break
            raise _fail(
                self.tok,
                f"expected 'on' or '}}' in prefix '{name.text}' "
                f"(opened at {opened.line}:{opened.col}), found {self.tok.describe()}",
            )
        while self.tok.is_word("on"):
            on = self.advance()
            pattern = self.value("a host pattern after 'on'")
            if self.tok.kind is not Kind.COLON and ":" in pattern.text:
                raise _fail(pattern, f"expected 'on HOST: PATH' with a space after ':', found {pattern.describe()}")
            self.expect(Kind.COLON, "after the host pattern of 'on'")
            path = self.value("an absolute path after 'on HOST:'")
            if not path.text.startswith("/"):
                raise _fail(path, f"prefix path must be absolute, found {path.describe()}")
            self.end("after prefix path")
            stripped = path.text.rstrip("/") or "/"
            entries.append(PrefixEntry(pattern.text.lower(), stripped, _pos(on)))
        self.expect(Kind.RBRACE, f"or 'on' to close prefix '{name.text}' (opened at {opened.line}:{opened.col})")
        self.draft.prefixes.append(PrefixSpec(name.text, tuple(entries), _pos(name)))

    # -- groups --------------------------------------------------------------------------------------

    def group(self) -> None:
        header = self.toks[self.i - 1]
        if self.tok.is_value:
            name_tok = self.advance()
            name = name_tok.text
        else:
            self.draft.unnamed_groups += 1
            name_tok, name = header, f"group_{self.draft.unnamed_groups}"
        opened = self.expect(
            Kind.LBRACE, f"after group name '{name}'" if name_tok is not header else "or a name after 'group'"
        )
        g = self.new_group(name, name_tok)
        while self.tok.kind is not Kind.RBRACE:
            if self.tok.kind is Kind.EOF:
                raise _fail(
                    self.tok,
                    f"expected '}}' to close group '{name}' (opened at {opened.line}:{opened.col}), found end of file",
                )
            self.group_statement(g)
        self.advance()
        self.finish_group(g)

    def new_group(self, name: str, at: Token) -> _GroupDraft:
        first = self.draft.group_pos.get(name)
        if first is not None:
            raise _fail(at, f"group '{name}' defined twice (first at {first})")
        self.draft.group_pos[name] = _pos(at)
        return _GroupDraft(name=name, pos=_pos(at))

    def finish_group(self, g: _GroupDraft) -> None:
        self.draft.groups.append(g.freeze())

    def parse_group_body(self, g: _GroupDraft) -> None:
        while self.tok.kind is not Kind.EOF:
            if self.tok.kind is Kind.RBRACE:
                raise _fail(self.tok, f"unexpected '}}' in the body of group '{g.name}'")
            self.group_statement(g)

    def group_statement(self, g: _GroupDraft) -> None:
        kw = self.tok
        if kw.kind is not Kind.WORD or kw.text not in GROUP_KEYWORDS:
            if kw.kind is Kind.WORD and kw.text in TOP_KEYWORDS and kw.text != "key":
                raise _fail(kw, f"'{kw.text}' is not allowed inside group '{g.name}' (missing '}}'?)")
            hint = _suggest(kw.text, GROUP_KEYWORDS) if kw.kind is Kind.WORD else ""
            raise _fail(
                kw,
                f"expected a group statement such as 'host' or 'include' in group "
                f"'{g.name}', found {kw.describe()}{hint}",
            )
        word = self.advance().text
        if word == "host":
            self.hosts(g)
        elif word in ("include", "exclude", "compare"):
            kind: RuleKind = word  # type: ignore[assignment]
            for t in self.values("a pattern", "patterns", word):
                g.rules.append(PatternRule(kind, _strip_slashes(t.text), _pos(t)))
        elif word == "action":
            self.action(g)
        elif word == "only-from":
            import ipaddress  # only where only-from is used

            for t in self.values("an address or network", "networks", "only-from"):
                try:
                    net = ipaddress.ip_network(t.text, strict=False)
                except ValueError:
                    raise _fail(
                        t, f"expected an address or CIDR network after 'only-from', found {t.describe()}"
                    ) from None
                g.only_from.append(str(net))
        elif word == "fingerprint":
            host = self.value("a host name after 'fingerprint'")
            fp = self.value("a SHA-256 fingerprint after the host name")
            hexed = fp.text.replace(":", "")
            if not _SHA256.match(hexed):
                raise _fail(fp, f"expected a SHA-256 fingerprint (64 hex digits), found {fp.describe()}")
            self.end("after fingerprint")
            g.fingerprints.append(FingerprintPin(host.text.lower(), hexed.lower(), _pos(kw)))
        elif word == "allow":
            self.allow(g)
        else:
            self.once(g.seen, kw, f"in group '{g.name}'")
            self.single_valued(g, kw)

    def single_valued(self, g: _GroupDraft, kw: Token) -> None:
        word = kw.text
        if word == "key":
            t = self.value("a key file after 'key'")
            self.end("after key path")
            g.key, g.key_pos = t.text, _pos(t)
        elif word == "auto":
            t = self.value("a policy after 'auto'")
            if t.text not in AUTO_POLICIES:
                raise _fail(t, f"unknown auto policy '{t.text}' (use {', '.join(AUTO_POLICIES)})")
            self.end("after auto policy")
            g.auto = t.text
        elif word == "backup-directory":
            g.backup_directory = self.value("a directory after 'backup-directory'").text
            self.end("after backup-directory path")
        elif word == "backup-generations":
            g.backup_generations = self.integer("a count after 'backup-generations'", 0, 1000)
            self.end("after backup-generations count")
        elif word == "interval":
            g.interval_ms = self.duration_ms("interval")
            self.end("after the interval")
        elif word == "delay":
            g.delay_ms = self.duration_ms("delay")
            self.end("after the delay")
        else:  # watch
            t = self.value("'on' or 'off' after 'watch'") if not self.tok.is_word("on") else self.advance()
            if t.text not in ("on", "off"):
                raise _fail(t, f"expected 'on' or 'off' after 'watch', found {t.describe()}")
            self.end("after watch on|off")
            g.watch = t.text == "on"

    def allow(self, g: _GroupDraft) -> None:
        """``allow setuid|devices ...;`` (may be given more than once; the words add up)."""
        if not self.tok.is_value:
            raise _fail(self.tok, f"expected 'setuid' or 'devices' after 'allow', found {self.tok.describe()}")
        while self.tok.is_value:
            t = self.advance()
            if t.text not in ALLOW_WORDS:
                raise _fail(t, f"unknown 'allow' word '{t.text}' (use setuid or devices)")
            if t.text == "setuid":
                g.allow_setuid = True
            else:
                g.allow_devices = True
        self.end("after 'allow' words")

    def hosts(self, g: _GroupDraft) -> None:
        count = 0
        while True:
            tok = self.tok
            if tok.kind is Kind.LPAREN:
                opened = self.advance()
                inner = 0
                while self.tok.is_value:
                    g.hosts.append(self.host_item(slave=True))
                    inner += 1
                if inner == 0:
                    raise _fail(self.tok, f"expected a host name after '(', found {self.tok.describe()}")
                self.expect(Kind.RPAREN, f"to close '(' at {opened.line}:{opened.col}")
                count += inner
            elif tok.is_value:
                g.hosts.append(self.host_item(slave=False))
                count += 1
            else:
                break
        if count == 0:
            raise _fail(self.tok, f"expected a host name after 'host', found {self.tok.describe()}")
        self.end("after host list")

    def host_item(self, slave: bool) -> HostSpec:
        name = self.advance()
        if self.tok.kind is not Kind.AT:
            return HostSpec(name.text.lower(), None, None, slave, _pos(name))
        self.advance()
        where = self.value(f"an address after '{name.text}@'")
        address, port = _split_address(where, default_port=None)
        return HostSpec(name.text.lower(), address.lower(), port, slave, _pos(name))

    def action(self, g: _GroupDraft) -> None:
        kw = self.toks[self.i - 1]
        opened = self.expect(Kind.LBRACE, "after 'action'")
        patterns: list[str] = []
        execs: list[str] = []
        exec_pos: list[SourcePos] = []
        logfile: str | None = None
        do_local = do_local_only = False
        seen: dict[str, SourcePos] = {}
        while self.tok.kind is not Kind.RBRACE:
            t = self.tok
            if t.kind is Kind.WORD and t.text in ACTION_KEYWORDS:
                self.advance()
                if t.text == "pattern":
                    patterns += [_strip_slashes(v.text) for v in self.values("a pattern", "patterns", "pattern")]
                elif t.text == "exec":
                    for v in self.values("a command", "commands", "exec"):
                        execs.append(v.text)
                        exec_pos.append(_pos(v))
                elif t.text == "logfile":
                    self.once(seen, t, "in action")
                    logfile = self.value("a file name after 'logfile'").text
                    self.end("after logfile name")
                elif t.text == "do-local":
                    do_local = True
                    self.end("after 'do-local'")
                else:
                    do_local = do_local_only = True
                    self.end("after 'do-local-only'")
            elif t.kind is Kind.EOF:
                raise _fail(
                    t, f"expected '}}' to close action (opened at {opened.line}:{opened.col}), found end of file"
                )
            else:
                hint = _suggest(t.text, ACTION_KEYWORDS) if t.kind is Kind.WORD else ""
                raise _fail(
                    t,
                    f"expected an action statement (pattern, exec, logfile, do-local, "
                    f"do-local-only), found {t.describe()}{hint}",
                )
        self.advance()
        g.actions.append(
            ActionSpec(tuple(patterns), tuple(execs), logfile, do_local, do_local_only, _pos(kw), tuple(exec_pos))
        )


def _strip_slashes(pattern: str) -> str:
    return pattern.rstrip("/") or "/"


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$")


def _is_address(text: str) -> bool:
    """An IPv4 or IPv6 address (with an optional %zone) or a DNS host name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return ":" not in text and _HOSTNAME.match(text) is not None
    return True


def _split_address(tok: Token, default_port: int | None) -> tuple[str, int | None]:
    """``addr``, ``addr:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address."""
    text = tok.text
    host, port_text = text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or (close + 1 < len(text) and text[close + 1] != ":"):
            raise _fail(tok, f"expected [IPv6] or [IPv6]:PORT, found {tok.describe()}")
        host, rest = text[1:close], text[close + 2 :]
        port_text = rest or None
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise _fail(tok, f"expected an address, found {tok.describe()}")
    if not _is_address(host):
        raise _fail(tok, f"expected an IP address or a host name, found {tok.describe()}")
    if port_text is None:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise _fail(tok, f"expected a port from 1 to 65535 in {tok.describe()}")
    return host, int(port_text)


def parse_into(text: str, file: str, draft: _Draft, reader: SourceReader | None, depth: int = 0) -> None:
    draft.files.append(file)
    _Parser(tokenize(text, file), draft, reader, depth).parse_config()


def _is_group_body(tokens: list[Token]) -> bool:
    """A fragment with no ``group`` keyword whose first statement is a group statement."""
    first = tokens[0]
    if first.kind is not Kind.WORD or first.text not in GROUP_KEYWORDS:
        return False
    return not any(t.is_word("group") for t in tokens)


def parse_fragment_into(text: str, file: str, draft: _Draft, reader: SourceReader | None, depth: int) -> None:
    """A ``config-dir`` fragment: a whole config file, or the body of a group named after the file."""
    tokens = tokenize(text, file)
    if not _is_group_body(tokens):
        parse_into(text, file, draft, reader, depth)
        return
    draft.files.append(file)
    p = _Parser(tokens, draft, reader, depth)
    g = p.new_group(posixpath.splitext(posixpath.basename(file))[0], tokens[0])
    p.parse_group_body(g)
    p.finish_group(g)


def parse_text(text: str, file: str = "<string>", reader: SourceReader | None = None) -> ConfigSpec:
    """Parse one config text (and, given a reader, everything it includes) into a model."""
    draft = _Draft()
    parse_into(text, file, draft, reader)
    return draft.freeze()


def load(path: str, reader: SourceReader) -> ConfigSpec:
    """Read the config file at ``path`` with all its includes and fragments."""
    try:
        text = reader.read_text(path)
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror or e}") from None
    return parse_text(text, path, reader)
