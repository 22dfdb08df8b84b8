"""Shared start-up of the in-process benchmarks: parse the Odoo options, open the registry."""

import argparse
import threading

from werkzeug.serving import make_server

import odoo
from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tools import config


def database_parser(description):
    """An argument parser that already asks for the Odoo config file and the database."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    return parser


def open_registry(args, *odoo_options):
    """Load Odoo's configuration for ``args.database`` and return its registry."""
    config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn", *odoo_options])
    odoo.service.server.load_server_wide_modules()
    return Registry(args.database)


def rss_mb(field="VmRSS"):
    """Resident memory of this process in MB (Linux): now (``VmRSS``) or at its peak (``VmHWM``)."""
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":")) / 1024


def reset_peak_rss():
    """Restart the peak (``VmHWM``) from the current resident memory, so it measures what follows."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
        refs.write("5")


def drain_inbox(registry, chunk_size):
    """Process the webhook inbox the way its cron does, one committed chunk at a time; return the count."""
    done = 0
    while True:
        with registry.cursor() as cr:
            claimed = api.Environment(cr, SUPERUSER_ID, {})["crm.inbox.event"]._process_chunk(
                limit=chunk_size, read_committed=True)
        if not claimed:
            return done
        done += claimed


def serve_locally(app):
    """Serve the WSGI ``app`` on a free loopback port in a daemon thread; return ``(server, base_url)``."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"
