from . import test_webhook, test_processing
