"""Tokenizer for the csync2 configuration language (and shoal's superset).

Owns: turning text into tokens with 1-based line and column. Must not: know the grammar, or touch files.

Lexical rules (csync2 2.0): whitespace separates; ``#`` starts a comment to the end of the line outside
quotes; ``{ } ( ) ; @`` are single-character tokens; a bare word may contain ``:`` but not end with it, so
``on host1:`` yields the word ``host1`` and a colon; ``"..."`` strings have no escapes and may hold any
character but ``"`` (spaces, ``@``, ``#``, ``;``, newlines).
"""

from __future__ import annotations

import enum
import re
from typing import NamedTuple

from shoal.errors import ConfigError


class Kind(enum.Enum):
    WORD = "word"
    STRING = "string"
    LBRACE = "{"
    RBRACE = "}"
    LPAREN = "("
    RPAREN = ")"
    SEMI = ";"
    COLON = ":"
    AT = "@"
    EOF = "end of file"


_PUNCT = {
    "{": Kind.LBRACE,
    "}": Kind.RBRACE,
    "(": Kind.LPAREN,
    ")": Kind.RPAREN,
    ";": Kind.SEMI,
    "@": Kind.AT,
}

#: Characters that end a bare word.
WORD_BREAKS = frozenset(' \t\r\n\f\v{}();@"#')

#: Words csync2 reserves everywhere: unquoted, they are never a value.
CSYNC2_KEYWORDS = frozenset(
    (
        "nossl",
        "ignore",
        "database",
        "group",
        "host",
        "exclude",
        "include",
        "compare",
        "key",
        "auto",
        "action",
        "pattern",
        "exec",
        "logfile",
        "do-local",
        "do-local-only",
        "prefix",
        "on",
        "lock-timeout",
        "tempdir",
        "backup-directory",
        "backup-generations",
        "no-cygwin-lowercase",
        "config",
    )
)


class Token(NamedTuple):
    """One lexeme with its 1-based position (a NamedTuple: a config has thousands of them)."""

    kind: Kind
    text: str
    file: str
    line: int
    col: int

    @property
    def is_value(self) -> bool:
        """A token usable as a value: a quoted string, or a bare word that csync2 does not reserve."""
        return self.kind is Kind.STRING or (self.kind is Kind.WORD and self.text not in CSYNC2_KEYWORDS)

    def is_word(self, text: str) -> bool:
        return self.kind is Kind.WORD and self.text == text

    def describe(self) -> str:
        if self.kind is Kind.EOF:
            return "end of file"
        if self.kind is Kind.STRING:
            return f'"{self.text}"'
        if self.kind is Kind.WORD and self.text in CSYNC2_KEYWORDS:
            return f"keyword '{self.text}'"
        return f"'{self.text}'"

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


_LEXEME = re.compile(
    r"""(?P<nl>\n)
      | [ \t\r\f\v]+
      | \#[^\n]*
      | (?P<punct>[{}();@])
      | "(?P<string>[^"]*)"
      | (?P<open>")
      | (?P<word>[^ \t\r\n\f\v{}();@"\#]+)""",
    re.VERBOSE,
)


def tokenize(text: str, file: str) -> list[Token]:
    """Split ``text`` into tokens, ending with one EOF token; raise ConfigError on an open quote."""
    tokens: list[Token] = []
    append = tokens.append
    line, line_start = 1, 0
    for m in _LEXEME.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue  # blanks and comments
        start = m.start()
        col = start - line_start + 1
        if kind == "nl":
            line += 1
            line_start = start + 1
        elif kind == "word":
            word = m.group(kind)
            stripped = word.rstrip(":")
            if stripped:
                append(Token(Kind.WORD, stripped, file, line, col))
            for k in range(len(stripped), len(word)):
                append(Token(Kind.COLON, ":", file, line, col + k))
        elif kind == "punct":
            c = m.group(kind)
            append(Token(_PUNCT[c], c, file, line, col))
        elif kind == "string":
            value = m.group(kind)
            append(Token(Kind.STRING, value, file, line, col))
            newlines = value.count("\n")
            if newlines:
                line += newlines
                line_start = start + 1 + value.rindex("\n") + 1
        else:  # an opening quote with no closing one
            raise ConfigError(f"{file}:{line}:{col}: unterminated quoted string (no closing '\"')")
    append(Token(Kind.EOF, "", file, line, len(text) - line_start + 1))
    return tokens
