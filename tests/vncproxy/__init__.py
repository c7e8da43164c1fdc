"""Tests for the VNC console proxy (vncproxy/)."""
