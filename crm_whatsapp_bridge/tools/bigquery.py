"""BigQuery REST client for the CRM export: service-account OAuth, datasets, tables, load jobs.

Plain Python (requests + tenacity + google-auth). Both the API's base URL and the OAuth
token URL can point at local servers, which is how the tests run.
"""

import hashlib
import json
import re
import time
import uuid

import requests
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

DEFAULT_BASE_URL = "https://bigquery.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/bigquery"
TIMEOUT = 60
# How long one call waits for a load job. A job still running then fails the run; the next
# run sends the same job id, BigQuery answers 409, and the wait goes on from there.
JOB_WAIT_SECONDS = 60
RETRYABLE_REASONS = frozenset({"backendError", "rateLimitExceeded", "internalError"})
JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


class BigQueryError(Exception):
    """An answer of the BigQuery API (or a failure to reach it), classified for retries."""

    def __init__(self, message, *, status=None, reason="", retryable=False):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.retryable = retryable


def _error_from(response):
    try:
        error = response.json().get("error") or {}
    except ValueError:
        error = {}
    reason = next((e.get("reason", "") for e in error.get("errors") or []), "")
    message = error.get("message") or f"HTTP {response.status_code}"
    retryable = response.status_code >= 500 or response.status_code == 429 or reason in RETRYABLE_REASONS
    return BigQueryError(f"BigQuery {response.status_code} {reason or ''}: {message}".replace("  ", " "),
                         status=response.status_code, reason=reason, retryable=retryable)


class BigQueryJobFailed(BigQueryError):
    """BigQuery ran the load job and it failed: the same job id can never succeed."""


class BigQueryJobRunning(BigQueryError):
    """The load job was still running when the caller stopped waiting: sending the same job id
    again later answers 409 and waits for that same job."""


def parse_service_account_key(raw):
    """The key file's JSON as a dict; ValueError (with a message for admins) when it cannot serve."""
    try:
        info = json.loads(raw)
    except (TypeError, ValueError):
        raise ValueError("The service-account key is not valid JSON.") from None
    if not isinstance(info, dict):
        raise ValueError("The service-account key must be a JSON object.")
    missing = [key for key in ("client_email", "private_key") if not info.get(key)]
    if missing:
        raise ValueError(f"The service-account key lacks {', '.join(missing)}.")
    if "PRIVATE KEY" not in info["private_key"]:
        raise ValueError("The service-account key's private_key is not a PEM private key.")
    return info


def fetch_access_token(key_info, token_url=None, session=None):
    """An OAuth access token for the service account (JWT bearer grant through google-auth)."""
    from google.auth.exceptions import GoogleAuthError
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    info = dict(key_info, token_uri=token_url) if token_url else dict(key_info)
    info.setdefault("token_uri", "https://oauth2.googleapis.com/token")
    try:
        credentials = service_account.Credentials.from_service_account_info(info, scopes=[SCOPE])
        credentials.refresh(Request(session=session))
    except (GoogleAuthError, ValueError) as exc:
        # Bad credentials do not get better by retrying: the admin has to fix the key.
        raise BigQueryError(f"Google refused the service account: {exc}", reason="auth") from exc
    return credentials.token


def job_id(table, generation, low, high, attempt=1):
    """The load job's id for one batch: the same table, range and attempt always give the same id.

    BigQuery refuses a second job with an existing id (409), so a re-run batch never loads
    twice. ``attempt`` only grows after BigQuery ran the job and it failed (nothing loaded).
    """
    digest = hashlib.sha256(f"{low}|{high}".encode()).hexdigest()[:16]
    suffix = f"_r{attempt}" if attempt > 1 else ""
    return JOB_ID_UNSAFE.sub("_", f"cwb_{table}_g{generation}_{digest}{suffix}")


def ndjson(rows):
    """Newline-delimited JSON bytes of rows (dicts of JSON-ready values)."""
    return b"".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in rows)


class BigQueryClient:
    """The calls the export needs, for one project and location, with a bearer token."""

    def __init__(self, project, location, token, base_url=None, session=None, attempts=4, poll_interval=1.0):
        self.project = project
        self.location = location
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.attempts = attempts
        self.poll_interval = poll_interval

    # ------------------------------------------------------------------ transport

    def _request(self, method, path, *, upload=False, expected=(200,), **kwargs):
        url = f"{self.base_url}/{'upload/' if upload else ''}bigquery/v2/projects/{self.project}{path}"
        for attempt in Retrying(stop=stop_after_attempt(self.attempts), wait=wait_random_exponential(0.5, 8),
                                retry=retry_if_exception(lambda exc: getattr(exc, "retryable", False)),
                                reraise=True):
            with attempt:
                try:
                    response = self.session.request(method, url, timeout=TIMEOUT, **kwargs)
                except requests.RequestException as exc:
                    raise BigQueryError(f"BigQuery unreachable: {type(exc).__name__}", retryable=True) from exc
                if response.status_code not in expected:
                    raise _error_from(response)
        return response

    # ------------------------------------------------------------------ datasets and tables

    def get_dataset(self, dataset):
        """The dataset resource, or None when it does not exist."""
        response = self._request("GET", f"/datasets/{dataset}", expected=(200, 404))
        return response.json() if response.status_code == 200 else None

    def ensure_dataset(self, dataset):
        """Create the dataset when missing; return (resource, created)."""
        existing = self.get_dataset(dataset)
        if existing:
            return existing, False
        body = {"datasetReference": {"projectId": self.project, "datasetId": dataset}, "location": self.location}
        response = self._request("POST", "/datasets", json=body, expected=(200, 409))
        return (response.json() if response.status_code == 200 else self.get_dataset(dataset)), True

    def ensure_table(self, dataset, table, schema=None, partition_field=None, view_query=None):
        """Create a table (or view) when missing; return True when it was created."""
        response = self._request("GET", f"/datasets/{dataset}/tables/{table}", expected=(200, 404))
        if response.status_code == 200:
            return False
        body = {"tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": table}}
        if view_query:
            body["view"] = {"query": view_query, "useLegacySql": False}
        else:
            body["schema"] = {"fields": schema}
            if partition_field:
                body["timePartitioning"] = {"type": "DAY", "field": partition_field}
        self._request("POST", f"/datasets/{dataset}/tables", json=body, expected=(200, 409))
        return True

    # ------------------------------------------------------------------ load jobs

    def load(self, dataset, table, schema, job, data, wait_seconds=JOB_WAIT_SECONDS):
        """Run one NDJSON load job under ``job`` (its id) and wait for it (at most ``wait_seconds``,
        then :class:`BigQueryJobRunning`); return its output rows.

        A 409 means a job with this id ran before (a retry or a re-run after a crash): its
        outcome is the outcome of this batch, and nothing is loaded twice.
        """
        configuration = {"load": {
            "destinationTable": {"projectId": self.project, "datasetId": dataset, "tableId": table},
            "sourceFormat": "NEWLINE_DELIMITED_JSON", "writeDisposition": "WRITE_APPEND",
            "createDisposition": "CREATE_NEVER", "schema": {"fields": schema},
            # Tables made by an earlier version gain the columns added since.
            "schemaUpdateOptions": ["ALLOW_FIELD_ADDITION"],
        }}
        metadata = {"jobReference": {"projectId": self.project, "jobId": job, "location": self.location},
                    "configuration": configuration}
        boundary = uuid.uuid4().hex
        body = b"".join([
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
            json.dumps(metadata).encode(),
            f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
            data,
            f"\r\n--{boundary}--\r\n".encode(),
        ])
        response = self._request("POST", "/jobs", upload=True, params={"uploadType": "multipart"}, data=body,
                                 headers={"Content-Type": f"multipart/related; boundary={boundary}"},
                                 expected=(200, 409))
        resource = response.json() if response.status_code == 200 else self.get_job(job)
        return self.wait(resource, wait_seconds)

    def get_job(self, job):
        return self._request("GET", f"/jobs/{job}", params={"location": self.location}).json()

    def wait(self, resource, timeout=JOB_WAIT_SECONDS):
        """Poll a job until DONE; return its output rows, or raise its error."""
        deadline = time.monotonic() + timeout
        job = resource["jobReference"]["jobId"]
        while resource.get("status", {}).get("state") != "DONE":
            if time.monotonic() > deadline:
                raise BigQueryJobRunning(f"Load job {job} still running after {timeout:.0f} s", retryable=True)
            time.sleep(self.poll_interval)
            resource = self.get_job(job)
        status = resource["status"]
        if status.get("errorResult"):
            error = status["errorResult"]
            raise BigQueryJobFailed(f"Load job {job} failed: {error.get('message', '')}",
                                    reason=error.get("reason", ""))
        return int(resource.get("statistics", {}).get("load", {}).get("outputRows", 0))
