"""Real-peer tests of the VNC proxy: x11vnc, Xvnc, qemu, vncdotool, noVNC in Chromium."""
