"""
The HTTP APIs of the C{api} plugin, as Klein applications:

 - L{web.faults}: the fault envelope and the exceptions handlers raise;
 - L{web.http}: JSON in and out, pagination, dates;
 - L{web.auth}: X-Auth-Token authentication and the admin role;
 - L{web.identity}: Keystone-v2-like tokens, /identity/v3 discovery, user catalogs;
 - L{web.compute}: the compute API (versions, flavors, images, extensions, keypairs, limits);
 - L{web.openapi}: the OpenAPI 3 document of the routes that exist;
 - L{web.app}: the one resource tree mounting them all;
 - L{web.seed}: demo data for the embedded default.
"""
