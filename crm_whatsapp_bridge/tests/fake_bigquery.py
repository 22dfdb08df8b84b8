"""A local stand-in for BigQuery's REST API and Google's OAuth token endpoint, speaking their wire format.

It keeps datasets, tables (with the rows loaded into them) and load jobs, answers 409 to a
reused job id, and can be told to fail the next uploads.
"""

import json
import re
from collections import deque
from email.parser import BytesParser
from email.policy import HTTP

from werkzeug.wrappers import Request, Response

from .fake_server import LocalServer

TOKEN = "ya29.fake-bigquery-token"
# The one shape of view the export creates: one row per partition, the first in the order.
VIEW_SHAPE = re.compile(r"SELECT \* FROM `[^`.]+\.([^`.]+)\.([^`.]+)` WHERE TRUE QUALIFY ROW_NUMBER\(\) "
                        r"OVER \(PARTITION BY ([\w, ]+) ORDER BY ([\w, ]+)\) = 1")


class FakeBigQueryServer(LocalServer):
    def __init__(self, project="demo-project"):
        self.project = project
        self.reset()
        super().__init__()

    def reset(self):
        """Forget every dataset, table, job and request: a new, empty project."""
        self.datasets = {}
        self.tables = {}   # (dataset, table) -> {"resource": {...}, "rows": [...]}
        self.jobs = {}     # job id -> job resource
        self.requests = []
        self.token_requests = []
        self._upload_failures = deque()
        self._job_failures = deque()
        self.running_polls = 0

    def fail_next_job(self, reason="backendError"):
        """Accept the next load job, then report it DONE with an errorResult and load nothing."""
        self._job_failures.append(reason)

    @property
    def token_url(self):
        return self.url + "/token"

    def fail_next_upload(self, status, reason, after_loading=False):
        """Answer the next load-job upload with an error; ``after_loading`` loads it first (the
        answer is lost on the way back, as when a connection drops)."""
        self._upload_failures.append((status, reason, after_loading))

    def rows(self, table, dataset="crm_export"):
        return self.tables.get((dataset, table), {}).get("rows", [])

    def view_rows(self, view, dataset="crm_export"):
        """What querying the view gives, evaluated the way BigQuery would for VIEW_SHAPE."""
        query = self.tables[(dataset, view)]["resource"]["view"]["query"]
        view_dataset, table, partition, order = VIEW_SHAPE.fullmatch(query).groups()
        rows = self.rows(table, view_dataset)
        for term in reversed(order.split(", ")):  # stable sorts, last key first
            column, _space, direction = term.partition(" ")
            rows = sorted(rows, key=lambda row, column=column: row[column], reverse=direction == "DESC")
        first = {}
        for row in rows:
            first.setdefault(tuple(row[column] for column in partition.split(", ")), row)
        return list(first.values())

    def uploads(self):
        return [req for req in self.requests if req["path"].startswith("/upload/")]

    @Request.application
    def _app(self, request):
        if request.path == "/token":
            self.token_requests.append(request.form.to_dict())
            return _json({"access_token": TOKEN, "expires_in": 3599, "token_type": "Bearer"})
        self.requests.append({"method": request.method, "path": request.path, "args": request.args.to_dict(),
                              "authorization": request.headers.get("Authorization")})
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return _error(401, "authError", "Request is missing a valid OAuth 2 access token.")
        base = f"/bigquery/v2/projects/{self.project}"
        path = request.path
        if path == f"/upload{base}/jobs" and request.method == "POST":
            return self._upload(request)
        if path.startswith(f"{base}/jobs/") and request.method == "GET":
            return self._get_job(path.rsplit("/", 1)[1])
        if path == f"{base}/datasets" and request.method == "POST":
            body = request.get_json()
            dataset = body["datasetReference"]["datasetId"]
            self.datasets[dataset] = dict(body, id=f"{self.project}:{dataset}")
            return _json(self.datasets[dataset])
        parts = path[len(base):].strip("/").split("/")
        if parts[0] == "datasets" and len(parts) == 2 and request.method == "GET":
            found = self.datasets.get(parts[1])
            return _json(found) if found else _error(404, "notFound", f"Not found: Dataset {parts[1]}")
        if parts[0] == "datasets" and len(parts) == 3 and parts[2] == "tables" and request.method == "POST":
            body = request.get_json()
            self.tables[(parts[1], body["tableReference"]["tableId"])] = {"resource": body, "rows": []}
            return _json(body)
        if parts[0] == "datasets" and len(parts) == 4 and request.method == "GET":
            found = self.tables.get((parts[1], parts[3]))
            return _json(found["resource"]) if found else _error(404, "notFound", f"Not found: Table {parts[3]}")
        return _error(404, "notFound", f"Unknown path {path}")

    def _upload(self, request):
        if request.args.get("uploadType") != "multipart":
            return _error(400, "invalid", "uploadType must be multipart")
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + request.headers["Content-Type"].encode() + b"\r\n\r\n" + request.get_data())
        metadata_part, data_part = list(message.iter_parts())
        metadata = json.loads(metadata_part.get_payload(decode=True))
        data = data_part.get_payload(decode=True)
        job_id = metadata["jobReference"]["jobId"]
        failure = self._upload_failures.popleft() if self._upload_failures else None
        if failure and not failure[2]:
            return _error(failure[0], failure[1], "Injected failure")
        if job_id in self.jobs:
            return _error(409, "duplicate", f"Already Exists: Job {self.project}:EU.{job_id}")
        load = metadata["configuration"]["load"]
        destination = load["destinationTable"]
        table = self.tables.get((destination["datasetId"], destination["tableId"]))
        if table is None:
            return _error(404, "notFound", f"Not found: Table {destination['tableId']}")
        if self._job_failures:
            reason = self._job_failures.popleft()
            self.jobs[job_id] = {"kind": "bigquery#job", "jobReference": metadata["jobReference"], "status": {
                "state": "DONE", "errorResult": {"reason": reason, "message": "Injected job failure"}}}
            return _json(self.jobs[job_id])
        rows = [json.loads(line) for line in data.decode().splitlines() if line.strip()]
        table["rows"].extend(rows)
        self.jobs[job_id] = {
            "kind": "bigquery#job", "jobReference": metadata["jobReference"],
            "configuration": metadata["configuration"],
            "status": {"state": "DONE"}, "statistics": {"load": {"outputRows": str(len(rows))}}}
        if failure:
            return _error(failure[0], failure[1], "Injected failure after loading")
        answer = json.loads(json.dumps(self.jobs[job_id]))
        if self.running_polls:
            answer["status"] = {"state": "RUNNING"}
        return _json(answer)

    def _get_job(self, job_id):
        job = self.jobs.get(job_id)
        if not job:
            return _error(404, "notFound", f"Not found: Job {job_id}")
        if self.running_polls:
            self.running_polls -= 1
            return _json(dict(job, status={"state": "RUNNING"}))
        return _json(job)


def _json(body, status=200):
    return Response(json.dumps(body), status=status, content_type="application/json")


def _error(status, reason, message):
    return _json({"error": {"code": status, "message": message,
                            "errors": [{"message": message, "domain": "global", "reason": reason}],
                            "status": reason}}, status)
