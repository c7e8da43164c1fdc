"""
The simulated Ganeti cluster: a RAPI server on loopback, a job queue on the
injected clock writing real job files, instances with NICs from network
pools, failure injection, and an RFB server per running instance.
"""
