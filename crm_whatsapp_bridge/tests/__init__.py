from . import test_webhook, test_processing, test_security, test_concurrency
