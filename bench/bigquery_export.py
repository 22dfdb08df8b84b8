#!/usr/bin/env python3
"""Rows/s and memory of the BigQuery export, against a local fake BigQuery in another process.

Run it with the Python of an Odoo 18 install, on a database where crm_whatsapp_bridge is
installed and that holds the leads to export (``bench/api_leads.py --seed N`` inserts them)::

    python bench/bigquery_export.py -c odoo.cfg -d mydb

It points the export's settings at the fake for the run (and puts them back after), runs a
full re-export exactly as the cron does (load jobs of 20,000 rows, a commit after each),
and prints the rows loaded per table, rows/s, and the process's RSS before and at its peak.
The fake runs in its own process and only counts rows, so the memory is the exporter's.
"""

import json
import multiprocessing
import time

from odoo_bench import database_parser, open_registry, reset_peak_rss, rss_mb

from odoo import SUPERUSER_ID, api

PARAMS = ("project", "dataset", "location", "key", "url", "export_text")


def serve_fake_bigquery(port_queue):
    """A BigQuery stand-in that accepts every load job and counts its rows."""
    from werkzeug.serving import make_server
    from werkzeug.wrappers import Request, Response

    jobs = {}

    @Request.application
    def app(request):
        if request.path == "/token":
            body = {"access_token": "bench-token", "expires_in": 3600, "token_type": "Bearer"}
        elif request.path.endswith("/jobs") and request.method == "POST":
            data = request.get_data()
            _headers, metadata_part, data_part = data.split(b"\r\n\r\n", 2)
            metadata = json.loads(metadata_part.split(b"\r\n--", 1)[0])
            rows = data_part.count(b"\n") - 2  # NDJSON lines, without the closing boundary's two
            job_id = metadata["jobReference"]["jobId"]
            jobs[job_id] = body = {"jobReference": metadata["jobReference"], "status": {"state": "DONE"},
                                   "statistics": {"load": {"outputRows": str(rows)}}}
        elif "/jobs/" in request.path:
            body = jobs[request.path.rsplit("/", 1)[1]]
        elif request.method == "GET":
            return Response(json.dumps({"error": {"code": 404, "errors": [{"reason": "notFound"}]}}), status=404,
                            content_type="application/json")
        else:
            body = request.get_json()
        return Response(json.dumps(body), content_type="application/json")

    server = make_server("127.0.0.1", 0, app, threaded=True)
    port_queue.put(server.server_port)
    server.serve_forever()


def service_account_key(token_url):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    return json.dumps({"type": "service_account", "client_email": "bench@example.iam.gserviceaccount.com",
                       "private_key": pem, "token_uri": token_url})


def main():
    args = database_parser(__doc__).parse_args()
    registry = open_registry(args)
    ports = multiprocessing.Queue()
    fake = multiprocessing.Process(target=serve_fake_bigquery, args=(ports,), daemon=True)
    fake.start()
    url = f"http://127.0.0.1:{ports.get(timeout=10)}"
    with registry.cursor() as cr:
        params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
        saved = {key: params.get_param(f"crm_whatsapp_bridge.bigquery_{key}") for key in PARAMS}
        saved_token_url = params.get_param("crm_whatsapp_bridge.oauth_token_url")
        for key, value in {"project": "bench-project", "dataset": "bench", "location": "EU", "url": url,
                           "key": service_account_key(url + "/token"), "export_text": ""}.items():
            params.set_param(f"crm_whatsapp_bridge.bigquery_{key}", value)
        params.set_param("crm_whatsapp_bridge.oauth_token_url", url + "/token")
        leads = api.Environment(cr, SUPERUSER_ID, {"active_test": False})["crm.lead"].search_count([])
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            run = env["crm.bigquery.export.run"].create({"trigger": "manual", "full": True})
            cr.commit()
            before = rss_mb()
            reset_peak_rss()
            start = time.perf_counter()
            run._execute()
            elapsed = time.perf_counter() - start
            peak = rss_mb("VmHWM")
            rows = run.rows_leads + run.rows_stage_history + run.rows_messages
            print(f"leads in the database: {leads}; run {run.state} {run.error or ''}")
            print(f"loaded: {run.rows_leads} lead rows, {run.rows_stage_history} stage changes, "
                  f"{run.rows_messages} WhatsApp messages in {run.job_count} load jobs")
            print(f"{rows} rows in {elapsed:.1f} s -> {rows / elapsed:.0f} rows/s")
            print(f"RSS before {before:.0f} MB, peak {peak:.0f} MB (growth {peak - before:.0f} MB)")
    finally:
        fake.terminate()
        with registry.cursor() as cr:
            params = api.Environment(cr, SUPERUSER_ID, {})["ir.config_parameter"]
            for key, value in saved.items():
                params.set_param(f"crm_whatsapp_bridge.bigquery_{key}", value or False)
            params.set_param("crm_whatsapp_bridge.oauth_token_url", saved_token_url or False)


if __name__ == "__main__":
    main()
