"""
Tests for L{vncproxy.des}.
"""

from twisted.trial.unittest import SynchronousTestCase

from vncproxy import des


class DESTests(SynchronousTestCase):
    def test_classicVector(self) -> None:
        """
        The DES core gives the classic FIPS test vector (key 0123456789abcdef, "Now is t").
        """
        key = bytes.fromhex("0123456789abcdef")
        self.assertEqual(des._des(key, b"Now is t").hex(), "3fa40e8a984d4815")

    def test_keyBitsReversed(self) -> None:
        """
        Each key byte has its bits reversed, and the password is NUL padded to 8 bytes.
        """
        self.assertEqual(des.passwordKey("\x01\x80"), b"\x80\x01" + b"\0" * 6)

    def test_onlyEightCharactersMatter(self) -> None:
        """
        Passwords that differ only after the 8th character give the same response.
        """
        challenge = bytes(range(16))
        self.assertEqual(
            des.challengeResponse("abcdefgh-one", challenge), des.challengeResponse("abcdefgh-two", challenge)
        )
        self.assertNotEqual(des.challengeResponse("abcdefgX", challenge), des.challengeResponse("abcdefgh", challenge))

    def test_knownResponse(self) -> None:
        """
        The response matches the one vncdotool computes for the same password and challenge.
        """
        self.assertEqual(des.challengeResponse("secret88", bytes(range(16))).hex(), "a2560e1def19400ed10c520d03a188e8")

    def test_checkResponse(self) -> None:
        """
        checkResponse accepts the right response and refuses any other.
        """
        challenge = b"\x42" * 16
        good = des.challengeResponse("pw", challenge)
        self.assertTrue(des.checkResponse("pw", challenge, good))
        self.assertFalse(des.checkResponse("pw", challenge, bytes(16)))
        self.assertFalse(des.checkResponse("other", challenge, good))

    def test_challengeLength(self) -> None:
        """
        A challenge that is not 16 bytes is an error.
        """
        self.assertRaises(ValueError, des.challengeResponse, "pw", b"short")
