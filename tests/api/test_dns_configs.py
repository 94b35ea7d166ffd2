"""The API's answers carry the domain of a pool's vmpooler DNS plugin (``:dns_configs:``):
v2/v3 FQDNs and ``fqdn``, v1's ``domain``; the plugin's secret keys are never shown."""

from __future__ import annotations

import yaml

from helpers import REPO

DNS_FILE = REPO / "tests" / "fixtures" / "vmpooler-dns.yaml"
PLANTED = "planted-dns-api-key"


def test_vm_answers_carry_the_domain_of_the_pools_dns_plugin(make_server):
    document = yaml.safe_load(DNS_FILE.read_text(encoding="utf-8"))
    pools = [dict(pool, size=2) for pool in document[":pools"]]  # one VM for v3, one for v1
    server = make_server(pools, extra={":dns_configs": document[":dns_configs"]})

    for pool, domain in (("debian-12-x86_64", "example.com"), ("centos-9-x86_64", "cloud.example.net"),
                         ("own-domain", "own.example.org")):
        fqdn = server.client.post(f"/vm/{pool}").json()[pool]["hostname"]
        name = fqdn.split(".")[0]
        assert fqdn == f"{name}.{domain}"
        assert server.client.get(f"/vm/{name}").json()[name]["fqdn"] == fqdn
        v1 = server.root.post(f"/api/v1/vm/{pool}").json()
        assert v1["domain"] == domain and "." not in v1[pool]["hostname"], v1
        short = v1[pool]["hostname"]
        record = server.root.get(f"/api/v1/vm/{short}").json()[short]
        assert record["domain"] == domain and record["fqdn"] == f"{short}.{domain}"

    bare = server.client.post("/vm/no-plugin").json()["no-plugin"]["hostname"]
    assert "." not in bare and server.client.get(f"/vm/{bare}").json()[bare]["fqdn"] == bare

    for path in ("/config", "/full_config"):
        body = server.client.get(path)
        assert body.status_code == 200 and PLANTED not in body.text and "api_key" not in body.text
    shown = server.client.get("/full_config").json()["full_config"]["dns_configs"]
    assert shown["cloud"] == {"dns_class": "gcp", "domain": "cloud.example.net"}
