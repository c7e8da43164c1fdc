"""
The initial schema: the whole data model (ARCHITECTURE §6) with the
columns of the original Synnefo models.

Written once for both dialects; C{{pk}}, C{{now}} and C{{bytes}} are
filled in per dialect by L{synnefo_twisted.db.migrations}. Timestamps are
C{TIMESTAMPTZ} (ISO-8601 UTC text on SQLite), JSON documents C{TEXT}.
Constraints (unique, foreign keys, checks) are there so that races and
bad writes fail in the database rather than corrupt it.
"""

from __future__ import annotations

JOB_STATUSES = "('queued', 'waiting', 'canceling', 'running', 'canceled', 'success', 'error')"

STATEMENTS = [
    # -- identity -----------------------------------------------------------
    """CREATE TABLE users (
        id {pk},
        uuid TEXT NOT NULL UNIQUE,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        roles TEXT NOT NULL DEFAULT '[]',
        is_active BOOLEAN NOT NULL DEFAULT TRUE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    """CREATE TABLE tokens (
        id {pk},
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL DEFAULT '',
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        expires TIMESTAMPTZ,
        revoked BOOLEAN NOT NULL DEFAULT FALSE,
        CHECK (length(token_hash) = 64)
    )""",
    "CREATE INDEX tokens_user ON tokens(user_id)",
    # -- projects and quotas -------------------------------------------------
    """CREATE TABLE projects (
        id {pk},
        uuid TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL UNIQUE,
        owner_uuid TEXT REFERENCES users(uuid) ON DELETE SET NULL,
        is_base BOOLEAN NOT NULL DEFAULT FALSE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    """CREATE TABLE project_members (
        project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        PRIMARY KEY (project_id, user_id)
    )""",
    # a holding: the project's total (user_id NULL) or one member's share
    """CREATE TABLE quotas (
        id {pk},
        project_id BIGINT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
        user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
        resource TEXT NOT NULL CHECK (resource IN (
            'cyclades.vm', 'cyclades.total_cpu', 'cyclades.cpu', 'cyclades.total_ram',
            'cyclades.ram', 'cyclades.disk', 'cyclades.network.private', 'cyclades.floating_ip')),
        quota_limit BIGINT NOT NULL CHECK (quota_limit >= 0),
        usage BIGINT NOT NULL DEFAULT 0 CHECK (usage >= 0),
        pending BIGINT NOT NULL DEFAULT 0 CHECK (pending >= 0)
    )""",
    "CREATE UNIQUE INDEX quotas_project ON quotas(project_id, resource) WHERE user_id IS NULL",
    "CREATE UNIQUE INDEX quotas_member ON quotas(project_id, user_id, resource) WHERE user_id IS NOT NULL",
    """CREATE TABLE commissions (
        id {pk},
        project_id BIGINT NOT NULL REFERENCES projects(id),
        user_id BIGINT REFERENCES users(id),
        name TEXT NOT NULL DEFAULT '',
        state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'accepted', 'rejected')),
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        resolved TIMESTAMPTZ
    )""",
    "CREATE INDEX commissions_pending ON commissions(state) WHERE state = 'pending'",
    """CREATE TABLE commission_provisions (
        commission_id BIGINT NOT NULL REFERENCES commissions(id) ON DELETE CASCADE,
        resource TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        PRIMARY KEY (commission_id, resource)
    )""",
    # -- Ganeti backends -----------------------------------------------------
    """CREATE TABLE backends (
        id {pk},
        clustername TEXT NOT NULL UNIQUE,
        rapi_url TEXT NOT NULL,
        username TEXT NOT NULL DEFAULT '',
        password TEXT NOT NULL DEFAULT '',
        verify_tls BOOLEAN NOT NULL DEFAULT TRUE,
        hypervisor TEXT NOT NULL DEFAULT 'kvm',
        disk_templates TEXT NOT NULL DEFAULT '[]',
        public BOOLEAN NOT NULL DEFAULT TRUE,
        drained BOOLEAN NOT NULL DEFAULT FALSE,
        offline BOOLEAN NOT NULL DEFAULT FALSE,
        simulated BOOLEAN NOT NULL DEFAULT FALSE,
        mfree BIGINT NOT NULL DEFAULT 0,
        mtotal BIGINT NOT NULL DEFAULT 0,
        dfree BIGINT NOT NULL DEFAULT 0,
        dtotal BIGINT NOT NULL DEFAULT 0,
        pinst_cnt INTEGER NOT NULL DEFAULT 0,
        ctotal INTEGER NOT NULL DEFAULT 0,
        resources_updated TIMESTAMPTZ,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now},
        CHECK (mfree >= 0 AND mtotal >= 0 AND dfree >= 0 AND dtotal >= 0 AND pinst_cnt >= 0 AND ctotal >= 0)
    )""",
    # -- flavors ---------------------------------------------------------------
    """CREATE TABLE volume_types (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        disk_template TEXT NOT NULL,
        deleted BOOLEAN NOT NULL DEFAULT FALSE
    )""",
    """CREATE TABLE flavors (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        cpu INTEGER NOT NULL CHECK (cpu > 0),
        ram INTEGER NOT NULL CHECK (ram > 0),
        disk INTEGER NOT NULL CHECK (disk >= 0),
        volume_type_id BIGINT NOT NULL REFERENCES volume_types(id),
        allow_create BOOLEAN NOT NULL DEFAULT TRUE,
        public BOOLEAN NOT NULL DEFAULT TRUE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now},
        UNIQUE (cpu, ram, disk, volume_type_id)
    )""",
    """CREATE TABLE flavor_access (
        flavor_id BIGINT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
        project TEXT NOT NULL REFERENCES projects(uuid) ON DELETE CASCADE,
        PRIMARY KEY (flavor_id, project)
    )""",
    """CREATE TABLE flavor_specs (
        flavor_id BIGINT NOT NULL REFERENCES flavors(id) ON DELETE CASCADE,
        spec_key TEXT NOT NULL,
        spec_value TEXT NOT NULL,
        PRIMARY KEY (flavor_id, spec_key)
    )""",
    # -- images (the registry) -----------------------------------------------
    """CREATE TABLE images (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT NOT NULL,
        location TEXT NOT NULL,
        checksum TEXT NOT NULL DEFAULT '',
        size BIGINT NOT NULL DEFAULT 0 CHECK (size >= 0),
        disk_format TEXT NOT NULL DEFAULT 'diskdump',
        container_format TEXT NOT NULL DEFAULT 'bare',
        status TEXT NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'UNAVAILABLE', 'ERROR')),
        is_public BOOLEAN NOT NULL DEFAULT FALSE,
        is_snapshot BOOLEAN NOT NULL DEFAULT FALSE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    """CREATE TABLE image_properties (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        prop_key TEXT NOT NULL,
        prop_value TEXT NOT NULL,
        PRIMARY KEY (image_id, prop_key)
    )""",
    """CREATE TABLE image_members (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        member TEXT NOT NULL,
        PRIMARY KEY (image_id, member)
    )""",
    # -- servers ---------------------------------------------------------------
    f"""CREATE TABLE servers (
        id {{pk}},
        name TEXT NOT NULL,
        userid TEXT NOT NULL REFERENCES users(uuid),
        project TEXT REFERENCES projects(uuid),
        shared_to_project BOOLEAN NOT NULL DEFAULT FALSE,
        backend_id BIGINT REFERENCES backends(id),
        flavor_id BIGINT NOT NULL REFERENCES flavors(id),
        image_id TEXT NOT NULL,
        operstate TEXT NOT NULL DEFAULT 'BUILD'
            CHECK (operstate IN ('BUILD', 'ERROR', 'STOPPED', 'STARTED', 'DESTROYED', 'RESIZE')),
        action TEXT,
        backendjobid BIGINT,
        backendopcode TEXT,
        backendjobstatus TEXT CHECK (backendjobstatus IS NULL OR backendjobstatus IN {JOB_STATUSES}),
        backendlogmsg TEXT,
        backendtime TIMESTAMPTZ,
        task TEXT,
        task_job_id BIGINT,
        buildpercentage INTEGER NOT NULL DEFAULT 0 CHECK (buildpercentage BETWEEN 0 AND 100),
        suspended BOOLEAN NOT NULL DEFAULT FALSE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        rescue BOOLEAN NOT NULL DEFAULT FALSE,
        rescue_image TEXT,
        serial_id BIGINT REFERENCES commissions(id) ON DELETE SET NULL,
        key_names TEXT NOT NULL DEFAULT '[]',
        config_url TEXT,
        created TIMESTAMPTZ NOT NULL DEFAULT {{now}},
        updated TIMESTAMPTZ NOT NULL DEFAULT {{now}}
    )""",
    "CREATE INDEX servers_user ON servers(userid, deleted)",
    "CREATE INDEX servers_backend ON servers(backend_id)",
    "CREATE INDEX servers_updated ON servers(updated)",
    """CREATE TABLE server_metadata (
        id {pk},
        server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        meta_key TEXT NOT NULL CHECK (length(meta_key) BETWEEN 1 AND 50),
        meta_value TEXT NOT NULL CHECK (length(meta_value) <= 500),
        UNIQUE (server_id, meta_key)
    )""",
    """CREATE TABLE server_tags (
        id {pk},
        server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        tag TEXT NOT NULL CHECK (length(tag) BETWEEN 1 AND 128),
        status TEXT NOT NULL DEFAULT 'PENDADD' CHECK (status IN ('ACTIVE', 'PENDADD', 'PENDDEL')),
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        UNIQUE (server_id, tag)
    )""",
    """CREATE TABLE diagnostics (
        id {pk},
        server_id BIGINT NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
        source TEXT NOT NULL,
        level TEXT NOT NULL CHECK (level IN ('DEBUG', 'INFO', 'WARNING', 'ERROR')),
        message TEXT NOT NULL,
        details TEXT,
        source_date TIMESTAMPTZ,
        created TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE INDEX diagnostics_server ON diagnostics(server_id, id)",
    """CREATE TABLE volumes (
        id {pk},
        name TEXT NOT NULL DEFAULT '',
        userid TEXT NOT NULL REFERENCES users(uuid),
        project TEXT REFERENCES projects(uuid),
        server_id BIGINT REFERENCES servers(id) ON DELETE SET NULL,
        volume_type_id BIGINT NOT NULL REFERENCES volume_types(id),
        size INTEGER NOT NULL CHECK (size > 0),
        idx INTEGER,
        source TEXT,
        status TEXT NOT NULL DEFAULT 'CREATING' CHECK (status IN (
            'CREATING', 'AVAILABLE', 'ATTACHING', 'DETACHING', 'IN_USE', 'DELETING', 'DELETED', 'ERROR')),
        delete_on_termination BOOLEAN NOT NULL DEFAULT TRUE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        backendjobid BIGINT,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE INDEX volumes_server ON volumes(server_id)",
    # -- networks --------------------------------------------------------------
    """CREATE TABLE networks (
        id {pk},
        name TEXT NOT NULL DEFAULT '',
        userid TEXT REFERENCES users(uuid),
        project TEXT REFERENCES projects(uuid),
        shared_to_project BOOLEAN NOT NULL DEFAULT FALSE,
        flavor TEXT NOT NULL CHECK (flavor IN ('CUSTOM', 'IP_LESS_ROUTED', 'MAC_FILTERED', 'PHYSICAL_VLAN')),
        mode TEXT NOT NULL DEFAULT 'bridged' CHECK (mode IN ('bridged', 'routed')),
        link TEXT,
        mac_prefix TEXT,
        public BOOLEAN NOT NULL DEFAULT FALSE,
        external_router BOOLEAN NOT NULL DEFAULT FALSE,
        floating_ip_pool BOOLEAN NOT NULL DEFAULT FALSE,
        drained BOOLEAN NOT NULL DEFAULT FALSE,
        state TEXT NOT NULL DEFAULT 'PENDING' CHECK (state IN ('PENDING', 'ACTIVE', 'DELETED', 'ERROR')),
        action TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        serial_id BIGINT REFERENCES commissions(id) ON DELETE SET NULL,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE UNIQUE INDEX networks_mac_prefix ON networks(mac_prefix) WHERE deleted = FALSE AND flavor = 'MAC_FILTERED'",
    "CREATE UNIQUE INDEX networks_vlan_link ON networks(link) WHERE deleted = FALSE AND flavor = 'PHYSICAL_VLAN'",
    "CREATE INDEX networks_user ON networks(userid, deleted)",
    f"""CREATE TABLE backend_networks (
        id {{pk}},
        network_id BIGINT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        backend_id BIGINT NOT NULL REFERENCES backends(id) ON DELETE CASCADE,
        operstate TEXT NOT NULL DEFAULT 'PENDING' CHECK (operstate IN ('PENDING', 'ACTIVE', 'DELETED', 'ERROR')),
        backendjobid BIGINT,
        backendopcode TEXT,
        backendjobstatus TEXT CHECK (backendjobstatus IS NULL OR backendjobstatus IN {JOB_STATUSES}),
        backendlogmsg TEXT,
        backendtime TIMESTAMPTZ,
        mac_prefix TEXT,
        created TIMESTAMPTZ NOT NULL DEFAULT {{now}},
        updated TIMESTAMPTZ NOT NULL DEFAULT {{now}},
        UNIQUE (network_id, backend_id)
    )""",
    """CREATE TABLE subnets (
        id {pk},
        network_id BIGINT NOT NULL REFERENCES networks(id) ON DELETE CASCADE,
        name TEXT NOT NULL DEFAULT '',
        userid TEXT,
        ipversion INTEGER NOT NULL CHECK (ipversion IN (4, 6)),
        cidr TEXT NOT NULL,
        gateway TEXT,
        dhcp BOOLEAN NOT NULL DEFAULT TRUE,
        slaac BOOLEAN NOT NULL DEFAULT TRUE,
        dns_nameservers TEXT NOT NULL DEFAULT '[]',
        host_routes TEXT NOT NULL DEFAULT '[]',
        public BOOLEAN NOT NULL DEFAULT FALSE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE UNIQUE INDEX subnets_one_per_version ON subnets(network_id, ipversion) WHERE deleted = FALSE",
    # IPv4 allocation tables: one per allocation pool of a subnet; bitmaps
    # hold one bit per address of [base, base + size) (1 = free / reserved)
    """CREATE TABLE ip_pools (
        id {pk},
        subnet_id BIGINT NOT NULL REFERENCES subnets(id) ON DELETE CASCADE,
        base TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size > 0),
        pool_offset INTEGER NOT NULL DEFAULT 0 CHECK (pool_offset >= 0),
        available {bytes} NOT NULL,
        reserved {bytes} NOT NULL,
        UNIQUE (subnet_id, base)
    )""",
    """CREATE TABLE ports (
        id {pk},
        name TEXT NOT NULL DEFAULT '',
        userid TEXT REFERENCES users(uuid),
        project TEXT REFERENCES projects(uuid),
        network_id BIGINT NOT NULL REFERENCES networks(id),
        server_id BIGINT REFERENCES servers(id) ON DELETE SET NULL,
        device_owner TEXT CHECK (device_owner IS NULL OR device_owner IN ('vm', 'router')),
        mac TEXT UNIQUE,
        idx INTEGER,
        firewall_profile TEXT CHECK (firewall_profile IS NULL OR firewall_profile IN ('ENABLED', 'DISABLED', 'PROTECTED')),
        state TEXT NOT NULL DEFAULT 'BUILD' CHECK (state IN ('ACTIVE', 'BUILD', 'DOWN', 'ERROR')),
        security_groups TEXT NOT NULL DEFAULT '[]',
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE INDEX ports_server ON ports(server_id)",
    "CREATE INDEX ports_network ON ports(network_id)",
    """CREATE TABLE ips (
        id {pk},
        subnet_id BIGINT NOT NULL REFERENCES subnets(id),
        network_id BIGINT NOT NULL REFERENCES networks(id),
        port_id BIGINT REFERENCES ports(id) ON DELETE SET NULL,
        userid TEXT REFERENCES users(uuid),
        project TEXT REFERENCES projects(uuid),
        shared_to_project BOOLEAN NOT NULL DEFAULT FALSE,
        address TEXT NOT NULL,
        ipversion INTEGER NOT NULL CHECK (ipversion IN (4, 6)),
        floating_ip BOOLEAN NOT NULL DEFAULT FALSE,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        serial_id BIGINT REFERENCES commissions(id) ON DELETE SET NULL,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE UNIQUE INDEX ips_address ON ips(network_id, address) WHERE deleted = FALSE",
    "CREATE INDEX ips_port ON ips(port_id)",
    """CREATE TABLE ip_history (
        id {pk},
        address TEXT NOT NULL,
        network_id BIGINT NOT NULL,
        server_id BIGINT,
        userid TEXT,
        action TEXT NOT NULL CHECK (action IN ('allocate', 'release')),
        action_reason TEXT NOT NULL DEFAULT '',
        action_date TIMESTAMPTZ NOT NULL DEFAULT {now}
    )""",
    "CREATE INDEX ip_history_address ON ip_history(address)",
    # MAC-prefix and bridge pools (one row per kind)
    """CREATE TABLE resource_pools (
        id {pk},
        kind TEXT NOT NULL UNIQUE CHECK (kind IN ('bridge', 'mac_prefix')),
        base TEXT NOT NULL,
        size INTEGER NOT NULL CHECK (size > 0),
        pool_offset INTEGER NOT NULL DEFAULT 0 CHECK (pool_offset >= 0),
        available {bytes} NOT NULL,
        reserved {bytes} NOT NULL
    )""",
    # -- key pairs and console forwardings --------------------------------------
    """CREATE TABLE keypairs (
        id {pk},
        userid TEXT NOT NULL REFERENCES users(uuid) ON DELETE CASCADE,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        public_key TEXT NOT NULL,
        deleted BOOLEAN NOT NULL DEFAULT FALSE,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        updated TIMESTAMPTZ NOT NULL DEFAULT {now},
        deleted_at TIMESTAMPTZ
    )""",
    "CREATE UNIQUE INDEX keypairs_name ON keypairs(userid, name) WHERE deleted = FALSE",
    """CREATE TABLE console_forwardings (
        id {pk},
        server_id BIGINT REFERENCES servers(id) ON DELETE SET NULL,
        userid TEXT NOT NULL,
        console_type TEXT NOT NULL CHECK (console_type IN ('vnc', 'vnc-ws', 'vnc-wss')),
        destination_host TEXT NOT NULL,
        destination_port INTEGER NOT NULL CHECK (destination_port BETWEEN 1 AND 65535),
        proxy_host TEXT NOT NULL,
        proxy_port INTEGER NOT NULL CHECK (proxy_port BETWEEN 1 AND 65535),
        client_address TEXT,
        outcome TEXT,
        created TIMESTAMPTZ NOT NULL DEFAULT {now},
        expires TIMESTAMPTZ,
        used TIMESTAMPTZ
    )""",
    "CREATE INDEX console_forwardings_server ON console_forwardings(server_id, created)",
]


def statements(dialect: str, fill: dict[str, str]) -> list[str]:
    """
    The statements for C{dialect}, with the placeholders filled.
    """
    return [s.format(**fill) for s in STATEMENTS]
