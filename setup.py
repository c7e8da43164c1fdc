"""
synnefo-twisted packaging.

The twistd dropin lives in twisted/plugins/ (no __init__.py there).
"""

from setuptools import find_packages, setup

# The twistd dropin cache (twisted/plugins/dropin.cache) is not shipped: a
# wheel install has no post-install hook, and Twisted rebuilds a missing or
# stale cache on the first plugin lookup (twistd --help, twistd synnefo) when
# the directory is writable. `make install` rebuilds it explicitly.


setup(
    name="synnefo-twisted",
    version="0.1.0",
    description="The Synnefo cloud control plane on one Twisted reactor per node",
    python_requires=">=3.11",
    # a static .pth for editable installs (the project root on sys.path), so
    # that twisted.plugin finds twisted/plugins/ here after `pip install -e .`
    package_dir={"": "."},
    packages=find_packages(include=["synnefo_twisted*", "plugins", "web*", "vncproxy*", "dhcp*"]) + ["twisted.plugins"],
    package_data={
        "twisted.plugins": ["synnefo_plugin.py"],
        "synnefo_twisted": ["py.typed", "db/migrations/*.sql"],
        "web": ["ui/**/*"],
    },
    include_package_data=True,
    install_requires=[
        "Twisted[tls]>=24.3",
        "klein>=23.5",
        "treq>=23.11",
        "txAMQP>=0.8.2",
        "txpostgres>=1.7",
        "psycopg2-binary>=2.9",
        "zope.interface>=6",
        "attrs>=23.1",
        "service_identity>=24.1",
        "pyOpenSSL>=24",
        "autobahn>=24.4",
        "cryptography>=43",
        # the API's JSON encoder (web/http.py dumps)
        "orjson>=3.9",
    ],
    extras_require={
        "dev": [
            "mypy>=1.10",
            "mypy-zope>=1.0.5",
            "ruff>=0.5",
            "hypothesis>=6.100",
            "vncdotool>=1.2",
            # real OpenStack clients against the API (tests/web/test_clients.py)
            "openstacksdk>=3",
            "python-novaclient>=18",
            # a bounded fuzzing run against /openapi.json (tests/web/test_schemathesis.py)
            "schemathesis>=4.0",
        ],
        # baselines measured beside our figures by bench/
        "bench": ["scapy>=2.5"],
    },
    entry_points={
        "console_scripts": [
            "snf-manage = synnefo_twisted.manage.main:main",
            "snf-ganeti-hook = synnefo_twisted.ganeti.hook:main",
            "snf-progress-monitor = synnefo_twisted.ganeti.progress:main",
            "snf-vncproxy-users = vncproxy.users:main",
            "snf-dhcp-ifup = dhcp.ifup:main",
        ],
    },
)
