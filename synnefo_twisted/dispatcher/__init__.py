"""
The logic dispatcher: consumes Ganeti's events from the bus and applies
them to the database (L{synnefo_twisted.dispatcher.service}); the status
round trip of C{snf-manage dispatcher-status}
(L{synnefo_twisted.dispatcher.status}).
"""
