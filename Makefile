# synnefo-twisted: two set-up commands.
#   make run   the all-in-one node on the embedded default (SQLite, in-process bus, simulated Ganeti)
#   make test  lint, types and the whole suite against real PostgreSQL, RabbitMQ, Ganeti, netns, VNC, Chromium

PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: run test install lint typecheck trial services harness clean bench

$(PY):
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "installing python3-venv"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) setup.py pyproject.toml
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -c 'from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))'
	@touch $@

install: $(STAMP)

# The all-in-one node: roles "all" on the embedded default. Two things a
# trial machine lacks are set here: a control user for the VNC proxy (kept
# in var/, its password in var/vncproxy-console.secret), and the DHCP
# responder is left out (it serves the taps of a real Ganeti node, as root,
# through iptables NFQUEUE rules).
run: install
	@mkdir -p var
	$(VENV)/bin/snf-manage migrate
	@[ -s var/vncproxy-users ] || { umask 077; head -c 18 /dev/urandom | base64 > var/vncproxy-console.secret; \
	  $(VENV)/bin/snf-vncproxy-users -f var/vncproxy-users add console --password-stdin < var/vncproxy-console.secret; }
	SNF_VNCPROXY_USERS_FILE=vncproxy-users $(VENV)/bin/twistd -n --pidfile= synnefo --no-plugin dhcp

services:
	bash tests/harness/services.sh

harness: services
	@for h in tests/harness/ganeti.sh tests/harness/vnc.sh tests/harness/netns.sh; do \
	  if [ -f $$h ]; then echo "== $$h"; bash $$h setup || exit 1; fi; done

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy $$(for d in synnefo_twisted plugins web vncproxy dhcp twisted/plugins bench; do \
	  ls $$d/*.py >/dev/null 2>&1 && echo $$d; done)

trial: install
	$(PY) tests/harness/trial_summary.py tests

test: install harness lint typecheck trial

bench: install services
	$(PY) -m pip install -q -e '.[dev,bench]'
	@command -v wrk >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 || \
	  echo "wrk is not installed: bench/api.py loads the API with its Python client"
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) var _trial_temp* build *.egg-info twisted/plugins/dropin.cache
