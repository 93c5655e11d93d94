"""``compose.yaml`` and ``deploy/haproxy.cfg`` agree with each other and with the settings.

No image can be pulled on these machines, so the stack itself is not started here; what can go
wrong on paper is checked: a replica the load balancer does not name, a replica that migrates,
a variable with a typo, a proxy the replicas would not trust.
"""

import ipaddress
import re
from pathlib import Path

import yaml

from tests.test_env_example import documented

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
HAPROXY = (ROOT / "deploy" / "haproxy.cfg").read_text()
SERVICES = COMPOSE["services"]
REPLICAS = sorted(name for name in SERVICES if re.fullmatch(r"crow-\d+", name))


def test_it_runs_the_whole_stack() -> None:
    assert {"postgres", "redis", "minio", "minio-bucket", "migrate", "haproxy"} <= set(SERVICES)
    assert len(REPLICAS) >= 2


def test_the_load_balancer_names_every_replica_and_nothing_else() -> None:
    servers = re.findall(r"^\s*server (\S+) (\S+):5000$", HAPROXY, re.MULTILINE)
    assert sorted(name for name, _ in servers) == REPLICAS
    assert all(name == host for name, host in servers)
    assert re.search(r"^\s*balance roundrobin$", HAPROXY, re.MULTILINE)


def test_replicas_share_one_configuration_and_migrate_once() -> None:
    environments = [SERVICES[name]["environment"] for name in REPLICAS]
    assert all(environment == environments[0] for environment in environments)
    assert environments[0]["CROW_MIGRATE"] == "0"
    assert "CROW_TOKEN_KEY_FILE" in environments[0]  # one signing key for every replica
    for name in REPLICAS:
        assert SERVICES[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "migrate" in SERVICES["migrate"]["command"][-1]


def test_every_variable_is_one_the_settings_read() -> None:
    names = {name for service in SERVICES.values() for name in service.get("environment", {})}
    crow = {
        name.removesuffix("_FILE") for name in names if name.startswith("CROW_") or name == "DATABASE_URL"
    }
    assert crow - documented() == set()


def test_the_replicas_trust_the_load_balancer_only() -> None:
    trusted = ipaddress.ip_network(SERVICES["crow-1"]["environment"]["CROW_TRUSTED_PROXIES"])
    haproxy = ipaddress.ip_address(SERVICES["haproxy"]["networks"]["crow"]["ipv4_address"])
    subnet = ipaddress.ip_network(COMPOSE["networks"]["crow"]["ipam"]["config"][0]["subnet"])
    assert trusted == ipaddress.ip_network(haproxy)  # not MinIO, Redis or anything else on the network
    assert haproxy in subnet
