"""Minimal Graph API client for the WhatsApp Cloud API and Lead Ads (requests + tenacity).

Errors are classified from Meta's own error codes: only throttling, temporary
server errors and network failures are retried, with exponential backoff and
jitter; everything else fails at once with a :class:`GraphApiError`.
"""

import json
import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

_logger = logging.getLogger(__name__)

DEFAULT_GRAPH_URL = "https://graph.facebook.com/v26.0"
DEFAULT_TIMEOUT = 20  # seconds; a scalar, as Odoo's test harness expects

# Graph error codes that mean "try again later" (throttling, temporary failures).
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80001, 80007, 130429, 131000, 131056})
# Codes an admin has to fix (token expired, invalid or revoked, permission missing).
AUTH_CODES = frozenset({0, 10, 102, 190}) | frozenset(range(200, 300))

# Fields of a Lead Ads lead object and of a lead form.
LEAD_FIELDS = ("id,created_time,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,"
               "platform,is_organic,field_data,custom_disclaimer_responses")
FORM_FIELDS = "id,name,status,questions,locale"


class GraphApiError(Exception):
    """An error answered by the Graph API, or the failure to reach it."""

    def __init__(self, message, *, code=None, http_status=None, retryable=False, fbtrace_id="",
                 subcode=None, user_message=""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retryable = retryable
        self.fbtrace_id = fbtrace_id
        self.subcode = subcode
        # Meta's explanation for people (``error_user_title: error_user_msg``), when it gives one.
        self.user_message = user_message

    @property
    def needs_admin(self):
        """True when retrying cannot help until an admin fixes the token or app."""
        return self.code in AUTH_CODES

    def __str__(self):
        parts = [self.message]
        if self.code is not None:
            parts.append(f"(code {self.code})")
        if self.http_status:
            parts.append(f"[HTTP {self.http_status}]")
        return " ".join(parts)


def _dict(value):
    return value if isinstance(value, dict) else {}


def _number(value):
    """An error code as Meta sends it (an integer), else ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value):
    return value if isinstance(value, str) and value else None


def error_from_response(response):
    """Turn a non-2xx Graph response into a classified :class:`GraphApiError`.

    Whatever the body holds (not JSON, another shape, wrong types), the answer is an error.
    """
    try:
        error = _dict(_dict(response.json()).get("error"))
    except ValueError:
        error = {}
    code = _number(error.get("code"))
    details = _text(_dict(error.get("error_data")).get("details"))
    message = details or _text(error.get("message")) or response.reason or "Graph API error"
    retryable = code in RETRYABLE_CODES or response.status_code >= 500 or response.status_code == 429
    if code in AUTH_CODES:
        retryable = False
    user_message = ": ".join(filter(None, (_text(error.get("error_user_title")), _text(error.get("error_user_msg")))))
    return GraphApiError(
        message,
        code=code,
        http_status=response.status_code,
        retryable=retryable,
        fbtrace_id=_text(error.get("fbtrace_id")) or "",
        subcode=_number(error.get("error_subcode")),
        user_message=user_message,
    )


def without_access_token(url):
    """``url`` without its ``access_token`` query parameter (Meta puts it in ``paging.next``).

    The client authenticates with its header; keeping the token out of URLs keeps it
    out of any log line that prints them.
    """
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key != "access_token"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _is_retryable(exc):
    return isinstance(exc, GraphApiError) and exc.retryable


class GraphClient:
    """Calls the Graph API with one access token (a WhatsApp number's)."""

    def __init__(self, access_token, base_url=DEFAULT_GRAPH_URL, *, timeout=DEFAULT_TIMEOUT,
                 max_attempts=3, backoff_initial=0.5, backoff_max=8.0, session=None):
        self.base_url = (base_url or DEFAULT_GRAPH_URL).rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.session = session or requests.Session()
        self._access_token = access_token

    def _retrying(self):
        return Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential_jitter(multiplier=self.backoff_initial, jitter=self.backoff_initial,
                                         max=self.backoff_max),
            reraise=True,
        )

    def _send_once(self, method, url, **kwargs):
        headers = {"Authorization": f"Bearer {self._access_token}"}
        try:
            response = self.session.request(method, url, headers=headers, timeout=self.timeout, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise GraphApiError(f"Graph API unreachable: {type(exc).__name__}", retryable=True) from exc
        if not response.ok:
            raise error_from_response(response)
        return response

    def request(self, method, url, **kwargs):
        """Send one request, retrying what Meta says is retryable; return the response."""
        for attempt in self._retrying():
            with attempt:
                return self._send_once(method, url, **kwargs)

    def _call_json(self, method, path_or_url, **kwargs):
        url = path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url.lstrip('/')}"
        response = self.request(method, url, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise GraphApiError("Graph API answered something that is not JSON") from exc

    def get_json(self, path, **params):
        """GET ``<base_url>/<path>`` and return the decoded JSON object."""
        return self._call_json("GET", path, params=params or None)

    def iter_pages(self, path, **params):
        """Yield the items of a paged Graph edge, following ``paging.next`` to the end."""
        for batch in self.iter_batches(path, **params):
            yield from batch

    def iter_batches(self, path, **params):
        """Yield a paged Graph edge page by page (lists of items), following ``paging.next``.

        Each page is fetched (and retried) on its own, so a caller can commit between pages.
        """
        page = self.get_json(path, **params)
        while True:
            data = page.get("data") or []
            if data:
                yield data
            next_url = (page.get("paging") or {}).get("next")
            if not next_url or not data:
                return
            page = self._call_json("GET", without_access_token(next_url))

    def get_lead(self, leadgen_id):
        """The Lead Ads lead object of ``leadgen_id`` (needs a page token with leads_retrieval)."""
        return self.get_json(str(leadgen_id), fields=LEAD_FIELDS)

    def form_lead_pages(self, form_id, since=None, after=None, page_size=100):
        """Yield ``(leads, after)`` for each page of a lead form's leads, from the cursor ``after`` on.

        Only leads created after ``since`` (unix seconds) are read. The ``after`` yielded
        with a page is the cursor of the next page (None with the last page), so a caller
        that stops between pages can resume later where it stopped.
        """
        params = self._form_leads_params(since, page_size)
        while True:
            page = self.get_json(f"{form_id}/leads", **(dict(params, after=after) if after else params))
            leads = page.get("data") or []
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after") if leads and paging.get("next") else None
            yield leads, after
            if not after:
                return

    def form_leads_first_page(self, form_id, since=None, page_size=100):
        """The first page of a lead form's leads: ``(leads, has_more)``, without following ``next``."""
        page = self.get_json(f"{form_id}/leads", **self._form_leads_params(since, page_size))
        leads = page.get("data") or []
        return leads, bool(leads and (page.get("paging") or {}).get("next"))

    @staticmethod
    def _form_leads_params(since, page_size):
        params = {"fields": LEAD_FIELDS, "limit": page_size}
        if since is not None:
            params["filtering"] = json.dumps(
                [{"field": "time_created", "operator": "GREATER_THAN", "value": int(since)}])
        return params

    def leadgen_forms(self, page_id):
        """Every lead form of a Facebook page (all pages of the edge)."""
        return list(self.iter_pages(f"{page_id}/leadgen_forms", fields=FORM_FIELDS, limit=100))

    def send_message(self, phone_number_id, message):
        """POST a Cloud API message object; return the wamid Meta accepted it under."""
        answer = self._call_json("POST", f"{phone_number_id}/messages", json=message)
        accepted = answer.get("messages") or [{}]
        wamid = accepted[0].get("id")
        if not wamid:
            raise GraphApiError("Graph API accepted the message but returned no message id")
        return wamid

    def upload_media(self, phone_number_id, content, mime_type, filename):
        """Upload a file to the Cloud API media store; return its media id."""
        answer = self._call_json(
            "POST", f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, content, mime_type)},
        )
        if not answer.get("id"):
            raise GraphApiError("Graph API stored the media but returned no media id")
        return answer["id"]

    def message_templates(self, waba_id):
        """Every message template of a WhatsApp Business Account (all pages)."""
        return list(self.iter_pages(
            f"{waba_id}/message_templates",
            fields="name,status,category,language,components,parameter_format,quality_score,rejected_reason",
            limit=100))

    def send_events(self, dataset_id, body):
        """POST Conversions API events (``{"data": [...]}``) to a dataset or pixel; return Meta's answer."""
        return self._call_json("POST", f"{dataset_id}/events", json=body)

    def download_media(self, media_id):
        """Resolve a media id and download its bytes.

        Returns ``(content, mime_type)``. The URL Meta gives is short-lived, so both
        steps run back to back; each is retried on its own.
        """
        info = self.get_json(str(media_id))
        url = info.get("url")
        if not url:
            raise GraphApiError(f"media {media_id} has no download URL")
        response = self.request("GET", url)
        mime_type = info.get("mime_type") or response.headers.get("Content-Type", "")
        return response.content, mime_type
