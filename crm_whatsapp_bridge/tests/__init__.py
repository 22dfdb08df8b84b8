from . import test_api, test_concurrency, test_outbound, test_processing, test_security, test_webhook
