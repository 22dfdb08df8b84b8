# Plain-Python helpers for Meta's wire formats and HTTP APIs.
# Nothing in this package may import odoo: it is tested with plain pytest.
