"""The account behind the Bluesky sandbox: its repository of records, its blobs, its sessions,
and what each XRPC method does with a request that passed the sandbox's fault injection.

Owns ``com.atproto.server.createSession`` / ``refreshSession``, ``com.atproto.repo.createRecord``
/ ``deleteRecord`` / ``getRecord`` / ``uploadBlob`` and ``com.atproto.identity.resolveHandle``.
HTTP plumbing and faults are ``bluesky.py``'s; the rules and error bodies ``_bluesky_rules``'.

A ``createRecord`` on a key that already holds a record fails the way the reference PDS fails
today: 500 ``InternalServerError`` (bluesky-social/atproto#3718; the explicit error proposed in
#4728 is not released). ``duplicate_status=409`` answers as some other PDSs do instead.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from multidict import MultiDictProxy

from pledgebot_sandbox._bluesky_rules import (
    ACCESS_SCOPE,
    MAX_UPLOAD_BYTES,
    POST,
    REFRESH_SCOPE,
    PointsWindow,
    Tids,
    Tokens,
    XrpcError,
    auth_required,
    check_post,
    check_record_key,
    cid_for,
    internal_error,
    invalid_request,
    rate_limited,
)
from pledgebot_sandbox._control import json_object
from pledgebot_sandbox._images import image_type

ACCESS_LIFETIME = 2 * 3600.0
REFRESH_LIFETIME = 90 * 86400.0
CREATE_COST, DELETE_COST = 3, 1


@dataclass
class Call:
    """One request: its body (read before anything else), query and authorization header."""

    query: MultiDictProxy[str]
    body: bytes
    content_type: str
    authorization: str | None

    def json_object(self) -> dict[str, Any]:
        return json_object(
            self.body,
            invalid_request,
            not_json="Request body is not valid JSON",
            not_object="Request body must be a JSON object",
        )


@dataclass
class Answer:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Answer]]


class BlueskyAccount:
    """One account on one PDS: its records by collection and key (insertion order is posting
    order), its blobs by CID, its sessions, and the XRPC handlers (``Call`` in, ``Answer``
    out, ``XrpcError`` raised)."""

    def __init__(
        self,
        *,
        did: str,
        handle: str,
        app_password: str,
        tokens: Tokens,
        window: PointsWindow,
        clock: Callable[[], float],
        known_handles: dict[str, str],
        max_image_bytes: int,
        duplicate_status: int,
        access_lifetime: float = ACCESS_LIFETIME,
    ) -> None:
        self.did, self.handle, self.app_password = did, handle, app_password
        self.tokens, self.window, self._clock = tokens, window, clock
        self.known_handles = {handle: did, **known_handles}
        self.max_image_bytes = max_image_bytes
        self.duplicate_status = duplicate_status
        self.access_lifetime = access_lifetime
        self.records: dict[tuple[str, str], dict[str, Any]] = {}  # (collection, rkey) → stored
        self.blobs: dict[str, dict[str, Any]] = {}
        self.sessions_created = 0
        self.sessions_refreshed = 0
        self.password_revoked = False
        self._tids = Tids(clock)
        self.handlers: dict[str, Handler] = {
            "com.atproto.server.createSession": self.create_session,
            "com.atproto.server.refreshSession": self.refresh_session,
            "com.atproto.repo.createRecord": self.create_record,
            "com.atproto.repo.deleteRecord": self.delete_record,
            "com.atproto.repo.getRecord": self.get_record,
            "com.atproto.repo.uploadBlob": self.upload_blob,
            "com.atproto.identity.resolveHandle": self.resolve_handle,
        }

    # --- sessions -----------------------------------------------------------------------------
    def _session(self) -> dict[str, Any]:
        return {
            "did": self.did,
            "handle": self.handle,
            "accessJwt": self.tokens.issue(self.did, ACCESS_SCOPE, self.access_lifetime),
            "refreshJwt": self.tokens.issue(self.did, REFRESH_SCOPE, REFRESH_LIFETIME),
            "active": True,
        }

    async def create_session(self, call: Call) -> Answer:
        body = call.json_object()
        identifier, password = body.get("identifier"), body.get("password")
        if not isinstance(identifier, str) or not isinstance(password, str):
            raise invalid_request("Input must have the properties identifier and password")
        known = identifier.lower().lstrip("@") in (self.handle, self.did)
        if not known or password != self.app_password or self.password_revoked:
            raise auth_required("Invalid identifier or password", "AuthenticationRequired")
        self.sessions_created += 1
        return Answer(self._session())

    async def refresh_session(self, call: Call) -> Answer:
        claims = self.tokens.verify(call.authorization, REFRESH_SCOPE)
        if self.password_revoked:
            raise invalid_request("Token has been revoked", "ExpiredToken")
        self.tokens.revoked.add(claims["jti"])  # rotated: a refresh token serves once
        self.sessions_refreshed += 1
        return Answer(self._session())

    def authorize(self, call: Call) -> None:
        """Every repo write needs this account's access token."""
        claims = self.tokens.verify(call.authorization, ACCESS_SCOPE)
        if self.password_revoked:
            raise invalid_request("Token could not be verified", "InvalidToken")
        if claims.get("sub") != self.did:
            raise auth_required("Invalid token subject", "AuthenticationRequired")

    def _own_repo(self, repo: Any) -> None:
        if repo not in (self.did, self.handle):
            raise auth_required("Cannot write to another account's repo", "AuthenticationRequired")

    # --- records ------------------------------------------------------------------------------
    def uri(self, collection: str, rkey: str) -> str:
        return f"at://{self.did}/{collection}/{rkey}"

    async def create_record(self, call: Call) -> Answer:
        self.authorize(call)
        body = call.json_object()
        self._own_repo(body.get("repo"))
        collection, record = body.get("collection"), body.get("record")
        if not isinstance(collection, str) or not isinstance(record, dict):
            raise invalid_request("Input must have the properties collection and record")
        if not self.window.take(CREATE_COST):
            raise rate_limited(self.window.headers())
        headers = self.window.headers()
        record.setdefault("$type", collection)
        if record["$type"] != collection:
            raise invalid_request(f"Invalid $type: expected {collection}, got {record['$type']}")
        if collection == POST and body.get("validate", True) is not False:
            check_post(record, self._blob_size, self.max_image_bytes)
        rkey = body.get("rkey") or self._tids.next()
        check_record_key(collection, str(rkey))
        if (collection, rkey) in self.records:
            if self.duplicate_status == 409:
                raise XrpcError(409, "RecordAlreadyExists", f"Record already exists: {rkey}")
            raise internal_error()
        encoded = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
        stored = {
            "uri": self.uri(collection, rkey),
            "cid": cid_for(encoded, raw=False),
            "rkey": rkey,
            "collection": collection,
            "value": record,
            "indexedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        }
        self.records[(collection, rkey)] = stored
        rev = self._tids.next()
        answer = {
            "uri": stored["uri"],
            "cid": stored["cid"],
            "commit": {"cid": cid_for(rev.encode(), raw=False), "rev": rev},
            "validationStatus": "valid",
        }
        return Answer(answer, headers)

    async def delete_record(self, call: Call) -> Answer:
        """Idempotent, as on the PDS: deleting a record that is not there succeeds."""
        self.authorize(call)
        body = call.json_object()
        self._own_repo(body.get("repo"))
        if not self.window.take(DELETE_COST):
            raise rate_limited(self.window.headers())
        key = (str(body.get("collection")), str(body.get("rkey")))
        if self.records.pop(key, None) is None:
            return Answer({}, self.window.headers())
        rev = self._tids.next()
        commit = {"cid": cid_for(rev.encode(), raw=False), "rev": rev}
        return Answer({"commit": commit}, self.window.headers())

    async def get_record(self, call: Call) -> Answer:
        """Public, as on the PDS (no token needed)."""
        repo, collection, rkey = (call.query.get(k) for k in ("repo", "collection", "rkey"))
        if not repo or not collection or not rkey:
            raise invalid_request("Params must have the properties repo, collection and rkey")
        stored = self.records.get((collection, rkey)) if repo in (self.did, self.handle) else None
        if stored is None:
            uri = f"at://{repo}/{collection}/{rkey}"
            raise invalid_request(f"Could not locate record: {uri}", "RecordNotFound")
        return Answer({"uri": stored["uri"], "cid": stored["cid"], "value": stored["value"]})

    # --- blobs and identities -------------------------------------------------------------
    async def upload_blob(self, call: Call) -> Answer:
        self.authorize(call)
        if len(call.body) > MAX_UPLOAD_BYTES:
            raise XrpcError(413, "PayloadTooLarge", "request entity too large")
        mime = image_type(call.body) or call.content_type or "application/octet-stream"
        cid = cid_for(call.body, raw=True)
        self.blobs[cid] = {"size": len(call.body), "mimeType": mime}
        ref = {"$type": "blob", "ref": {"$link": cid}, "mimeType": mime, "size": len(call.body)}
        return Answer({"blob": ref})

    def _blob_size(self, cid: str) -> int | None:
        blob = self.blobs.get(cid)
        return None if blob is None else int(blob["size"])

    async def resolve_handle(self, call: Call) -> Answer:
        handle = (call.query.get("handle") or "").lower()
        did = self.known_handles.get(handle)
        if did is None:
            raise invalid_request("Unable to resolve handle")
        return Answer({"did": did})
