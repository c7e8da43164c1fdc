# The suite runs on shared, loaded machines: a property test is judged by its
# examples, not by how fast the machine produced them (no per-example
# deadline, no "too slow" health check).
from hypothesis import HealthCheck, settings

settings.register_profile("synnefo", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("synnefo")
