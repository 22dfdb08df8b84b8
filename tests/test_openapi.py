"""The OpenAPI document describes every route the controllers declare, and its references resolve."""

import re

import yaml
from conftest import ADDON

DOCUMENT = ADDON / "static" / "openapi.yaml"
API_ROUTE = re.compile(r'@api_route\("(/[^"]+)", "([A-Z]+)"')
HTTP_ROUTE = re.compile(r'@http\.route\("(/[^"]+)"[^@]*?methods=\["([A-Z]+)"\]')


def declared_routes():
    routes = set()
    for source in (ADDON / "controllers").glob("*.py"):
        text = source.read_text()
        for path, method in API_ROUTE.findall(text) + HTTP_ROUTE.findall(text):
            routes.add((re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path), method.lower()))
    return routes


def test_every_route_is_documented():
    document = yaml.safe_load(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    routes = declared_routes()
    assert {("/crm/leads", "get"), ("/crm/sync-bigquery/{run_id}", "get"), ("/crm/openapi.yaml", "get"),
            ("/crm/webhook/whatsapp", "post")} <= routes
    assert routes - documented == set()


def test_references_resolve():
    document = yaml.safe_load(DOCUMENT.read_text())
    text = DOCUMENT.read_text()
    for reference in set(re.findall(r'\$ref: "#/([^"]+)"', text)):
        node = document
        for part in reference.split("/"):
            assert part in node, reference
            node = node[part]
