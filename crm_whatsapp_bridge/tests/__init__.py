from . import (
    test_analytics,
    test_api,
    test_api_sync_meta,
    test_bigquery_export,
    test_concurrency,
    test_meta_processing,
    test_meta_sync,
    test_meta_webhook,
    test_outbound,
    test_processing,
    test_security,
    test_webhook,
)
