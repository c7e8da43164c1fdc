"""
The VNC console proxy (a drop-in for snf-vncauthproxy): a JSON control
socket hands out one-time forwardings; a viewer (plain RFB, or noVNC over a
WebSocket) authenticates with the one-time password using RFB VNC
authentication and is then relayed to the VM's VNC server.

Modules:
  - L{vncproxy.des}: the VNC DES challenge-response;
  - L{vncproxy.shacrypt}, L{vncproxy.users}: the sha512-crypt users file and its CLI;
  - L{vncproxy.control}: control request parsing, replies and the control protocol;
  - L{vncproxy.rfb}: sans-I/O RFB handshakes (with the VNC server, with the viewer);
  - L{vncproxy.ports}: the port pool;
  - L{vncproxy.splice}: the zero-copy splice(2) relay for plain vnc after the handshake;
  - L{vncproxy.websocket}: the viewer side over a WebSocket (autobahn);
  - L{vncproxy.forwarding}: one forwarding, from control request to teardown
    (with the flow-controlled Twisted relay used for WebSockets and TLS);
  - L{vncproxy.service}: the running proxy (listeners, registry, health, metrics);
  - L{vncproxy.broker}: the L{IConsoleBroker} control-socket client;
  - L{vncproxy.testing}: L{FakeConsoleBroker}, verified by the same contract tests.
"""
