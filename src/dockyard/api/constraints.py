"""A botocore model's constraints in checkable form, worked out once per shape.

`ShapeBook` turns botocore shapes into `ShapeFacts`: bounds, enum sets, compiled patterns and the
constraint texts of SageMaker's (Coral's) validation messages. AWS models carry Java regular
expressions that the service applies with `Matcher.matches()` (the whole value must match); the
few places where Java and Python's `regex` module differ are translated here, each pattern is
compiled once, and values are matched with a timeout so a hostile value cannot stall the server.
A pattern that still does not compile is skipped (logged at debug), never fatal.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from typing import Any, NamedTuple

import regex
from botocore.model import Shape

__all__ = [
    "MemberFacts", "ShapeBook", "ShapeFacts", "compile_java", "display_pattern", "java_to_python", "matches",
]

log = logging.getLogger(__name__)

# Seconds one match may take; past it the value is accepted (a skipped check, logged at debug).
MATCH_TIMEOUT = 0.05

# Java's `.` stops at every line terminator, Python's only at `\n`.
_JAVA_DOT = "[^\\n\\r\\u0085\\u2028\\u2029]"

# Java's \d \w \s and POSIX \p{...} classes are US-ASCII only; regex's are Unicode-aware.
# Values are character-class bodies.
_ASCII_ESCAPES = {"d": "0-9", "w": "a-zA-Z_0-9", "s": "\\x20\\t\\n\\x0B\\f\\r"}
_POSIX = {
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7F", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "\\x21-\\x2F\\x3A-\\x40\\x5B-\\x60\\x7B-\\x7E",
    "Graph": "\\x21-\\x7E", "Print": "\\x20-\\x7E", "Blank": "\\x20\\t",
    "Cntrl": "\\x00-\\x1F\\x7F", "XDigit": "0-9a-fA-F", "Space": "\\x20\\t\\n\\x0B\\f\\r",
}
_HEX = frozenset("0123456789abcdefABCDEF")


def _class_body(body: str, negate: bool, in_class: bool) -> str | None:
    """A character-class body as a token; None when it cannot be said here (negated in a class)."""
    if in_class:
        return None if negate else body
    return f"[{'^' if negate else ''}{body}]"


def _u_escape(p: str, i: int) -> int | None:
    """The code unit of a backslash-u escape (four hex digits) starting at p[i], or None."""
    digits = p[i + 2:i + 6]
    if p.startswith("\\u", i) and len(digits) == 4 and set(digits) <= _HEX:
        return int(digits, 16)
    return None


def java_to_python(pattern: str) -> str:
    """Rewrite a Java pattern so `regex` reads it the way java.util.regex does."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    class_open = -1  # index just after `[` or `[^`: a `]` there is a literal
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            e = pattern[i + 1]
            token, i_next = pattern[i:i + 2], i + 2
            if e in "pP" and pattern.startswith("{", i + 2) and "}" in pattern[i + 3:]:
                end = pattern.index("}", i + 3)
                token, i_next = pattern[i:end + 1], end + 1
                name = pattern[i + 3:end]
                if name in _POSIX:
                    token = _class_body(_POSIX[name], e == "P", in_class) or token
            elif e == "u" and (unit := _u_escape(pattern, i)) is not None:
                token, i_next = pattern[i:i + 6], i + 6
                low = _u_escape(pattern, i + 6)
                # Java writes astral characters as UTF-16 surrogate pairs; regex wants code points.
                if 0xD800 <= unit <= 0xDBFF and low is not None and 0xDC00 <= low <= 0xDFFF:
                    code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    token, i_next = f"\\U{code:08X}", i + 12
            elif e in "zZ":
                token = "\\Z"  # a whole-value match makes Java's \z and \Z both "end of input"
            elif e in _ASCII_ESCAPES:
                token = _class_body(_ASCII_ESCAPES[e], False, in_class) or token
            elif e.lower() in _ASCII_ESCAPES and not in_class:
                token = _class_body(_ASCII_ESCAPES[e.lower()], True, False) or token
            out.append(token)
            i = i_next
            continue
        if in_class:
            if c == "^" and i == class_open:
                class_open = i + 1
            elif c == "]" and i != class_open:
                in_class = False
            out.append(c)
        elif c == "[":
            in_class, class_open = True, i + 1
            out.append(c)
        else:
            out.append(_JAVA_DOT if c == "." else c)
        i += 1
    return "".join(out)


@functools.cache
def compile_java(pattern: str) -> regex.Pattern | None:
    """The compiled form of a model pattern, or None when it cannot be compiled (check skipped)."""
    try:
        return regex.compile(java_to_python(pattern))
    except (regex.error, ValueError, OverflowError) as exc:
        log.debug("skipping model pattern %r: %s", pattern, exc)
        return None


def matches(compiled: regex.Pattern, value: str) -> bool:
    """True when the whole value matches (Java `matches()`); True too when matching times out."""
    try:
        return compiled.fullmatch(value, timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        log.debug("pattern %r timed out on a %d-character value", compiled.pattern, len(value))
        return True


def display_pattern(pattern: str) -> str:
    """The pattern as SageMaker prints it in a validation message.

    botocore's models dropped the `^…$` that SageMaker's own patterns carry (Coral prints e.g.
    `^[a-zA-Z0-9]([\\-a-zA-Z0-9]*[a-zA-Z0-9])?$`); a whole-value match means the same either way.
    """
    if pattern.startswith(("^", "\\A")) or pattern.endswith(("$", "\\z", "\\Z")):
        return pattern
    return f"^{pattern}$"


SIZED = frozenset({"string", "blob", "list", "map"})  # constraints on length / size
# Coral deserialises into Java int / long: larger numbers never reach the service.
_JAVA_BOUNDS = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


@dataclasses.dataclass(eq=False)
class ShapeFacts:
    """What validation needs to know about one model shape."""

    name: str
    kind: str  # botocore type name
    hides: bool = False  # sensitive, or holds something sensitive: its value is never echoed
    min: Any = None
    max: Any = None
    pattern: str | None = None
    regex: regex.Pattern | None = None
    enum: frozenset[str] | None = None
    enum_order: tuple[str, ...] = ()  # as the model lists them, for the message
    texts: dict[str, str] = dataclasses.field(default_factory=dict)  # max, min, pattern, enum
    members: tuple[MemberFacts, ...] = ()
    item: ShapeFacts | None = None
    key: ShapeFacts | None = None
    value: ShapeFacts | None = None

    def children(self) -> list[ShapeFacts]:
        kids = [m.shape for m in self.members] + [self.item, self.key, self.value]
        return [k for k in kids if k is not None]

    def finish(self) -> ShapeFacts:
        """Fill in the constraint texts, in Coral's order: max, min, pattern, enum."""
        word = "length" if self.kind in SIZED else "value"
        self.texts = {}
        if self.max is not None:
            self.texts["max"] = f"Member must have {word} less than or equal to {self.max}"
        if self.min is not None:
            self.texts["min"] = f"Member must have {word} greater than or equal to {self.min}"
        if self.regex is not None and self.pattern is not None:
            shown = display_pattern(self.pattern)
            self.texts["pattern"] = f"Member must satisfy regular expression pattern: {shown}"
        if self.enum is not None:
            self.texts["enum"] = f"Member must satisfy enum value set: [{', '.join(self.enum_order)}]"
        return self


class MemberFacts(NamedTuple):
    name: str  # as on the wire (PascalCase)
    path_name: str  # as in messages (camelCase)
    shape: ShapeFacts
    required: bool


class ShapeBook:
    """Builds and remembers ShapeFacts for one service model (not thread-safe: callers lock).

    `overrides` maps (structure shape, member) to a pattern that replaces the member's own.
    """

    def __init__(self, overrides: dict[tuple[str, str], str]) -> None:
        self._overrides = overrides
        self._facts: dict[str, ShapeFacts] = {}

    def build(self, shape: Shape) -> ShapeFacts:
        """Facts for `shape` and everything below it, complete with sensitivity spread upwards."""
        facts = self._build(shape)
        _spread_hiding(list(self._facts.values()))
        return facts

    def _build(self, shape: Shape) -> ShapeFacts:
        known = self._facts.get(shape.name)
        if known is not None:
            return known
        meta, kind = shape.metadata, shape.type_name
        low, high = _JAVA_BOUNDS.get(kind, (None, None))
        s = ShapeFacts(shape.name, kind, hides=bool(meta.get("sensitive")),
                       min=meta.get("min", low), max=meta.get("max", high))
        self._facts[shape.name] = s  # before recursing: shapes may refer to themselves
        if kind == "structure":
            required = set(shape.required_members)
            s.members = tuple(
                MemberFacts(name, name[:1].lower() + name[1:], self._member(shape.name, name, target),
                            name in required)
                for name, target in shape.members.items()
            )
        elif kind == "list":
            s.item = self._build(shape.member)
        elif kind == "map":
            s.key, s.value = self._build(shape.key), self._build(shape.value)
        elif kind == "string":
            s.pattern = meta.get("pattern")
            s.regex = compile_java(s.pattern) if s.pattern else None
            if shape.enum:
                s.enum, s.enum_order = frozenset(shape.enum), tuple(shape.enum)
        return s.finish()

    def _member(self, struct_name: str, name: str, member_shape: Shape) -> ShapeFacts:
        s = self._build(member_shape)
        pattern = self._overrides.get((struct_name, name))
        if pattern is None:
            return s
        return dataclasses.replace(s, pattern=pattern, regex=compile_java(pattern)).finish()


def _spread_hiding(shapes: list[ShapeFacts]) -> None:
    """A list, map or structure holding a sensitive value is never echoed either (a fixpoint)."""
    changed = True
    while changed:
        changed = False
        for s in shapes:
            if not s.hides and any(c.hides for c in s.children()):
                s.hides = changed = True
