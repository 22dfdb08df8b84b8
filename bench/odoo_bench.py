"""Shared start-up of the in-process benchmarks: parse the Odoo options, open the registry."""

import argparse

import odoo
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
