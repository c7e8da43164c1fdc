"""
The node-side DHCPv4 / router advertisement / neighbour proxy / stateless
DHCPv6 responder (the nfdhcpd of Synnefo) on the Twisted reactor.

Layout:

  - L{dhcp.packet}: Ethernet, IPv4, IPv6 and UDP framing, checksums, MACs;
  - L{dhcp.dhcpv4}, L{dhcp.ndp}, L{dhcp.dhcpv6}: the protocol codecs
    (plain C{struct}, garbage in gives C{None}, never an exception);
  - L{dhcp.nfqueue}: nfnetlink_queue spoken directly over a netlink socket
    and read from the reactor in bounded batches;
  - L{dhcp.binding}: the nfdhcpd binding-file format and the inotify store;
  - L{dhcp.responder}: what to answer (pure logic: packet in, verdict and
    frame out);
  - L{dhcp.service}: the Twisted service gluing the above together;
  - L{dhcp.ifup}: Ganeti's kvm-ifup-custom/kvm-ifdown-custom script;
  - L{dhcp.rules}: the iptables/ip6tables NFQUEUE rule set.
"""
