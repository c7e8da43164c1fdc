# -*- test-case-name: tests.vncproxy.test_shacrypt -*-
"""
SHA-512 crypt (C{$6$}), written from Ulrich Drepper's public specification
"Unix crypt using SHA-256 and SHA-512", so the users file works without the
C{crypt} module (deprecated, and gone in Python 3.13).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SALT_MAX = 16
ROUNDS_DEFAULT = 5000
_ROUNDS_MIN = 1000
_ROUNDS_MAX = 999_999_999

# The order the 64 digest bytes are encoded in, three at a time (spec, step 22).
_ORDER = (
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
    (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
    (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19), (62, 20, 41),
)  # fmt: skip

_HASH = re.compile(r"^\$6\$(?:rounds=(\d+)\$)?([^$]{0,16})[^$]*\$([./0-9A-Za-z]{86})$")


class InvalidHash(ValueError):
    """
    The stored value is not a C{$6$} sha512-crypt hash.
    """


def _encode(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def _repeat(digest: bytes, length: int) -> bytes:
    return (digest * (length // len(digest) + 1))[:length]


def sha512Crypt(password: str, salt: str, rounds: int | None = None) -> str:
    """
    The C{$6$} hash of C{password} with C{salt} (at most 16 characters used).

    @param rounds: None for the default 5000 (not written in the result);
        otherwise clamped to [1000, 999999999] and written as C{rounds=N$}.
    """
    p = password.encode("utf-8")
    s = salt.encode("utf-8")[:_SALT_MAX]
    if rounds is None:
        count, prefix = ROUNDS_DEFAULT, "$6$"
    else:
        count = min(max(rounds, _ROUNDS_MIN), _ROUNDS_MAX)
        prefix = f"$6$rounds={count}$"

    b = hashlib.sha512(p + s + p).digest()
    a = hashlib.sha512(p + s)
    a.update(_repeat(b, len(p)))
    i = len(p)
    while i:
        a.update(b if i & 1 else p)
        i >>= 1
    digest = a.digest()

    pSeq = _repeat(hashlib.sha512(p * len(p)).digest(), len(p))
    sSeq = _repeat(hashlib.sha512(s * (16 + digest[0])).digest(), len(s))

    c = digest
    sha512 = hashlib.sha512
    for r in range(count):
        h = sha512(pSeq if r & 1 else c)
        if r % 3:
            h.update(sSeq)
        if r % 7:
            h.update(pSeq)
        h.update(c if r & 1 else pSeq)
        c = h.digest()

    encoded = "".join(_encode(c[x], c[y], c[z], 4) for x, y, z in _ORDER) + _encode(0, 0, c[63], 2)
    return f"{prefix}{s.decode('utf-8', 'replace')}${encoded}"


def isSha512Hash(value: str) -> bool:
    """
    Whether C{value} looks like a C{$6$} hash.
    """
    return _HASH.match(value) is not None


def verify(password: str, hashed: str) -> bool:
    """
    Whether C{password} matches the C{$6$} hash C{hashed} (constant-time compare).

    @raise InvalidHash: when C{hashed} is not a C{$6$} hash.
    """
    m = _HASH.match(hashed)
    if m is None:
        raise InvalidHash("not a $6$ sha512-crypt hash")
    rounds = int(m.group(1)) if m.group(1) is not None else None
    return hmac.compare_digest(sha512Crypt(password, m.group(2), rounds).encode(), hashed.encode())


def makeHash(password: str, rounds: int | None = None) -> str:
    """
    A fresh C{$6$} hash of C{password} with a random 16-character salt.
    """
    salt = "".join(_ALPHABET[b & 0x3F] for b in os.urandom(_SALT_MAX))
    return sha512Crypt(password, salt, rounds)
