# -*- test-case-name: tests.vncproxy.test_des -*-
"""
VNC authentication (RFB security type 2): the 16-byte challenge is
encrypted with single DES in ECB mode under a key made from the first
8 characters of the password, NUL padded, with the bits of every key byte
reversed (the convention of the original d3des code; RFC 6143 7.2.2 leaves
it unsaid).
"""

from __future__ import annotations

import hmac

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, modes

PASSWORD_LENGTH = 8
CHALLENGE_LENGTH = 16

_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))


def passwordKey(password: str) -> bytes:
    """
    The DES key for C{password}: its first 8 characters (latin-1), NUL
    padded, each byte bit-reversed.

    @raise UnicodeEncodeError: when the password is not latin-1.
    """
    raw = password.encode("latin-1")[:PASSWORD_LENGTH].ljust(PASSWORD_LENGTH, b"\0")
    return raw.translate(_REVERSED)


def _des(key: bytes, data: bytes) -> bytes:
    # Triple DES with K1 = K2 = K3 is single DES.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def challengeResponse(password: str, challenge: bytes) -> bytes:
    """
    The response a viewer knowing C{password} sends to C{challenge}.
    """
    if len(challenge) != CHALLENGE_LENGTH:
        raise ValueError(f"a VNC challenge is {CHALLENGE_LENGTH} bytes, not {len(challenge)}")
    return _des(passwordKey(password), challenge)


def checkResponse(password: str, challenge: bytes, response: bytes) -> bool:
    """
    Whether C{response} answers C{challenge} for C{password} (constant time).
    """
    return hmac.compare_digest(challengeResponse(password, challenge), response)
