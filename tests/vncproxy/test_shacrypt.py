"""
Tests for L{vncproxy.shacrypt}: vectors computed by glibc's crypt(3).
"""

from twisted.trial.unittest import SynchronousTestCase

from vncproxy.shacrypt import InvalidHash, isSha512Hash, makeHash, sha512Crypt, verify


class ShaCryptTests(SynchronousTestCase):
    def test_specVector(self) -> None:
        """
        The specification's example hash of "Hello world!" with salt "saltstring".
        """
        self.assertEqual(
            sha512Crypt("Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
        )

    def test_roundsAndLongSalt(self) -> None:
        """
        An explicit rounds count is written out, and the salt is cut to 16 characters.
        """
        self.assertEqual(
            sha512Crypt("Hello world!", "saltstringsaltstring", 10000),
            "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
        )

    def test_longPassword(self) -> None:
        """
        A password longer than a SHA-512 block hashes as glibc does.
        """
        self.assertEqual(
            sha512Crypt("x" * 200, "0123456789abcdef"),
            "$6$0123456789abcdef$Rru0YcJdWAfylTzYkMBaHfdgEjT2jeUewuTfATTJEn/Inu1Ma3JNgneCwDVl2NaWmkgDKZzdSV8VisQ10exaF.",
        )

    def test_verify(self) -> None:
        """
        A fresh hash verifies its password and no other.
        """
        hashed = makeHash("secret")
        self.assertTrue(isSha512Hash(hashed))
        self.assertTrue(verify("secret", hashed))
        self.assertFalse(verify("Secret", hashed))

    def test_invalidHash(self) -> None:
        """
        Anything but a $6$ hash is refused.
        """
        self.assertRaises(InvalidHash, verify, "x", "$1$abc$def")
        self.assertFalse(isSha512Hash("plain"))
