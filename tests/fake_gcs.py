"""A Cloud Storage server on localhost for tests: the JSON API subset that
gcsfs (etils.epath's gs:// backend) and tensorstore's gcs driver (orbax's
array writes) use, with object generations and their preconditions.

Objects live in memory in the test process, so job subprocesses killed
and rerun against it see one bucket, as a relaunched VM sees the real one.
Clients find it through STORAGE_EMULATOR_HOST (gcsfs) and
TENSORSTORE_GCS_HTTP_URL (tensorstore); `env()` returns both. A request
this server does not know is answered 501 and recorded in `unknown`.
"""

from __future__ import annotations

import http.server
import itertools
import json
import re
import sys
import threading
import urllib.parse
from typing import Any


class FakeGCS:
  """Serves buckets from memory on 127.0.0.1 until `stop()`."""

  def __init__(self, buckets: tuple[str, ...] = ('bkt',)):
    self.objects: dict[str, dict[str, tuple[bytes, int]]] = {
        b: {} for b in buckets
    }
    self.unknown: list[str] = []
    self._lock = threading.Lock()
    self._generation = itertools.count(1_000_000)
    self._uploads: dict[str, tuple[str, str, bytearray, dict]] = {}
    handler = type('Handler', (_Handler,), {'store': self})
    self._server = _Server(('127.0.0.1', 0), handler)
    self.url = f'http://127.0.0.1:{self._server.server_port}'
    self._thread = threading.Thread(target=self._server.serve_forever,
                                    daemon=True)
    self._thread.start()

  def env(self) -> dict[str, str]:
    """Environment variables that point both clients here."""
    return {
        'STORAGE_EMULATOR_HOST': self.url,
        'TENSORSTORE_GCS_HTTP_URL': self.url,
        # Anonymous clients: no credentials to look for (each search for
        # them waits on a metadata server that is not there).
        'FSSPEC_GS_TOKEN': 'anon',
        'GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT': 'false',
        'GCE_METADATA_HOST': '127.0.0.1:9',
        'GCE_METADATA_IP': '127.0.0.1:9',
    }

  def names(self, bucket: str = 'bkt') -> list[str]:
    with self._lock:
      return sorted(self.objects[bucket])

  def stop(self) -> None:
    self._server.shutdown()
    self._server.server_close()

  # Storage operations, each under the lock.

  def resource(self, bucket: str, name: str) -> dict[str, Any] | None:
    with self._lock:
      item = self.objects[bucket].get(name)
    return None if item is None else _resource(bucket, name, *item)

  def read(self, bucket: str, name: str) -> tuple[bytes, int] | None:
    with self._lock:
      return self.objects[bucket].get(name)

  def write(self, bucket: str, name: str, data: bytes,
            if_generation: int | None) -> dict[str, Any] | None:
    """Stores `data`; None when the precondition fails."""
    with self._lock:
      current = self.objects[bucket].get(name)
      if if_generation is not None and \
          if_generation != (current[1] if current else 0):
        return None
      generation = next(self._generation)
      self.objects[bucket][name] = (bytes(data), generation)
    return _resource(bucket, name, data, generation)

  def delete(self, bucket: str, name: str, if_generation: int | None) -> int:
    with self._lock:
      current = self.objects[bucket].get(name)
      if current is None:
        return 404
      if if_generation is not None and if_generation != current[1]:
        return 412
      del self.objects[bucket][name]
    return 204

  def listing(self, bucket: str, q: dict[str, str]) -> dict[str, Any]:
    prefix, delimiter = q.get('prefix', ''), q.get('delimiter', '')
    start, end = q.get('startOffset', ''), q.get('endOffset')
    with self._lock:
      items = sorted(self.objects[bucket].items())
    out, prefixes = [], set()
    for name, (data, generation) in items:
      if not name.startswith(prefix) or name < start or \
          (end and name >= end):
        continue
      rest = name[len(prefix):]
      if delimiter and delimiter in rest:
        prefixes.add(prefix + rest.split(delimiter)[0] + delimiter)
        continue
      out.append(_resource(bucket, name, data, generation))
    doc: dict[str, Any] = {'kind': 'storage#objects', 'items': out}
    if prefixes:
      doc['prefixes'] = sorted(prefixes)
    return doc


def _resource(bucket: str, name: str, data: bytes,
              generation: int) -> dict[str, Any]:
  return {
      'kind': 'storage#object',
      'id': f'{bucket}/{name}/{generation}',
      'name': name,
      'bucket': bucket,
      'generation': str(generation),
      'metageneration': '1',
      'size': str(len(data)),
      'contentType': 'application/octet-stream',
      'timeCreated': '2026-01-01T00:00:00.000Z',
      'updated': '2026-01-01T00:00:00.000Z',
      'storageClass': 'STANDARD',
  }


class _Server(http.server.ThreadingHTTPServer):
  daemon_threads = True

  def handle_error(self, request: Any, client_address: Any) -> None:
    # A client that drops a connection it no longer needs (tensorstore
    # cancels reads it has satisfied) is not an error of the server.
    if not isinstance(sys.exc_info()[1], ConnectionError):
      super().handle_error(request, client_address)


_OBJECT = re.compile(r'^/(?:download/)?storage/v1/b/([^/]+)/o/(.+)$')
_LIST = re.compile(r'^/storage/v1/b/([^/]+)/o/?$')
_BUCKET = re.compile(r'^/storage/v1/b/([^/]+)/?$')
_UPLOAD = re.compile(r'^/upload/storage/v1/b/([^/]+)/o/?$')
_MOVE = re.compile(r'^/storage/v1/b/([^/]+)/o/(.+)/moveTo/o/(.+)$')
_REWRITE = re.compile(
    r'^/storage/v1/b/([^/]+)/o/(.+)/(?:rewriteTo|copyTo)/b/([^/]+)/o/(.+)$')


class _Handler(http.server.BaseHTTPRequestHandler):
  store: FakeGCS
  protocol_version = 'HTTP/1.1'

  def log_message(self, *args: Any) -> None:  # quiet
    pass

  # Helpers.

  def _parts(self) -> tuple[str, dict[str, str]]:
    url = urllib.parse.urlsplit(self.path)
    return url.path, dict(urllib.parse.parse_qsl(url.query))

  def _body(self) -> bytes:
    n = int(self.headers.get('Content-Length') or 0)
    return self.rfile.read(n) if n else b''

  def _send(self,
            status: int,
            body: bytes = b'',
            headers: dict[str, str] | None = None) -> None:
    self.send_response(status)
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.send_header('Content-Length', str(len(body)))
    self.end_headers()
    if body and self.command != 'HEAD':
      self.wfile.write(body)

  def _json(self, status: int, doc: Any) -> None:
    self._send(status,
               json.dumps(doc).encode(), {'Content-Type': 'application/json'})

  def _error(self, status: int, message: str) -> None:
    self._json(status, {'error': {'code': status, 'message': message}})

  def _unknown(self) -> None:
    self.store.unknown.append(f'{self.command} {self.path}')
    self._error(501, f'fake GCS does not serve {self.command} {self.path}')

  @staticmethod
  def _generation(q: dict[str, str], key: str = 'ifGenerationMatch'):
    return int(q[key]) if key in q else None

  # Verbs.

  def do_GET(self) -> None:
    path, q = self._parts()
    if m := _OBJECT.match(path):
      return self._get_object(m.group(1), urllib.parse.unquote(m.group(2)), q)
    if m := _LIST.match(path):
      return self._json(200, self.store.listing(m.group(1), q))
    if m := _BUCKET.match(path):
      if m.group(1) in self.store.objects:
        return self._json(200, {'kind': 'storage#bucket', 'name': m.group(1)})
      return self._error(404, 'no such bucket')
    self._unknown()

  do_HEAD = do_GET

  def _get_object(self, bucket: str, name: str, q: dict[str, str]) -> None:
    item = self.store.read(bucket, name) if bucket in self.store.objects \
        else None
    if item is None:
      return self._error(404, f'no object {name}')
    data, generation = item
    want = self._generation(q)
    if want is not None and want != generation:
      return self._error(412, 'precondition failed')
    if self._generation(q, 'ifGenerationNotMatch') == generation:
      return self._send(304, headers={'x-goog-generation': str(generation)})
    if q.get('alt') != 'media':
      return self._json(200, _resource(bucket, name, data, generation))
    headers = {
        'x-goog-generation': str(generation),
        'x-goog-metageneration': '1',
        'Content-Type': 'application/octet-stream',
    }
    rng = self.headers.get('Range')
    if rng and (m := re.match(r'bytes=(\d*)-(\d*)$', rng.strip())):
      size = len(data)
      if m.group(1) == '':
        first, last = max(size - int(m.group(2)), 0), size - 1
      else:
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
      if first >= size and size > 0:
        return self._send(416, headers={'Content-Range': f'bytes */{size}'})
      headers['Content-Range'] = f'bytes {first}-{last}/{size}'
      return self._send(206, data[first:last + 1], headers)
    self._send(200, data, headers)

  def do_POST(self) -> None:
    path, q = self._parts()
    body = self._body()
    if m := _UPLOAD.match(path):
      return self._upload(m.group(1), q, body)
    if m := _REWRITE.match(path):
      src_b, src, dst_b, dst = m.groups()
      item = self.store.read(src_b, urllib.parse.unquote(src))
      if item is None:
        return self._error(404, 'no source object')
      res = self.store.write(dst_b, urllib.parse.unquote(dst), item[0],
                             self._generation(q))
      if res is None:
        return self._error(412, 'precondition failed')
      if '/rewriteTo/' in path:
        return self._json(
            200, {
                'kind': 'storage#rewriteResponse',
                'done': True,
                'totalBytesRewritten': res['size'],
                'objectSize': res['size'],
                'resource': res
            })
      return self._json(200, res)
    if m := _MOVE.match(path):
      bucket, src, dst = m.groups()
      src = urllib.parse.unquote(src)
      item = self.store.read(bucket, src)
      if item is None:
        return self._error(404, 'no source object')
      res = self.store.write(bucket, urllib.parse.unquote(dst), item[0], None)
      self.store.delete(bucket, src, None)
      return self._json(200, res)
    if path == '/batch/storage/v1':
      return self._batch(body)
    self._unknown()

  def _upload(self, bucket: str, q: dict[str, str], body: bytes) -> None:
    kind = q.get('uploadType')
    if 'upload_id' in q:  # gcsfs sends a resumable upload's data by POST
      return self._chunk(q, body)
    if kind == 'media':
      return self._store(bucket, q['name'], body, q)
    if kind == 'multipart':
      meta, data = _multipart(self.headers.get('Content-Type', ''), body)
      return self._store(bucket, meta.get('name') or q.get('name'), data, q)
    if kind == 'resumable':
      meta = json.loads(body or b'{}')
      upload_id = f'u{next(self.store._generation)}'
      self.store._uploads[upload_id] = (bucket, meta.get('name') or
                                        q.get('name'), bytearray(), q)
      location = (f'{self.store.url}/upload/storage/v1/b/{bucket}/o?'
                  f'uploadType=resumable&upload_id={upload_id}')
      return self._send(200, headers={'Location': location})
    self._unknown()

  def _store(self, bucket: str, name: str, data: bytes, q: dict[str,
                                                                str]) -> None:
    res = self.store.write(bucket, name, data, self._generation(q))
    if res is None:
      return self._error(412, 'precondition failed')
    self._json(200, res)

  def do_PUT(self) -> None:
    path, q = self._parts()
    if not _UPLOAD.match(path):
      return self._unknown()
    self._chunk(q, self._body())

  def _chunk(self, q: dict[str, str], body: bytes) -> None:
    """The next piece of a resumable upload; the last one stores it."""
    upload = self.store._uploads.get(q.get('upload_id', ''))
    if upload is None:
      return self._error(404, 'no such upload')
    bucket, name, data, first_q = upload
    data += body
    total = self.headers.get('Content-Range', '').rpartition('/')[2]
    if total not in ('*', '') and int(total) == len(data):
      del self.store._uploads[q['upload_id']]
      return self._store(bucket, name, bytes(data), first_q)
    headers = {'Range': f'bytes=0-{len(data) - 1}'} if data else {}
    self._send(308, headers=headers)

  def do_DELETE(self) -> None:
    path, q = self._parts()
    if m := _OBJECT.match(path):
      status = self.store.delete(m.group(1), urllib.parse.unquote(m.group(2)),
                                 self._generation(q))
      return self._send(status) if status == 204 else \
          self._error(status, 'cannot delete')
    self._unknown()

  def _batch(self, body: bytes) -> None:
    """multipart/mixed of DELETE requests (gcsfs removes files so)."""
    boundary = self.headers.get_param('boundary')
    out, sep = [], 'batch_response'
    for part in body.split(f'--{boundary}'.encode())[1:]:
      text = part.decode(errors='replace')
      request = re.search(r'^(DELETE|GET) (\S+)', text, re.M)
      if not request:
        continue
      cid = re.search(r'Content-ID:\s*<?([^>\r\n]+)>?', text, re.I)
      status = 404
      if request.group(1) == 'DELETE':
        url = urllib.parse.urlsplit(request.group(2))
        m = _OBJECT.match(url.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if m:
          status = self.store.delete(m.group(1),
                                     urllib.parse.unquote(m.group(2)),
                                     self._generation(q))
      reason = {204: 'No Content', 404: 'Not Found'}.get(status, 'Error')
      out.append(f'--{sep}\r\nContent-Type: application/http\r\n'
                 f'Content-ID: <response-{cid.group(1) if cid else ""}>'
                 f'\r\n\r\nHTTP/1.1 {status} {reason}\r\n'
                 'Content-Length: 0\r\n\r\n')
    payload = (''.join(out) + f'--{sep}--\r\n').encode()
    self._send(200, payload,
               {'Content-Type': f'multipart/mixed; boundary={sep}'})


def _multipart(content_type: str, body: bytes) -> tuple[dict, bytes]:
  """(metadata, data) of a multipart/related upload, the data byte-exact
  (clients separate parts with LF or CRLF)."""
  boundary = re.search(r'boundary="?([^";]+)"?', content_type).group(1)
  parts = body.split(b'--' + boundary.encode())[1:3]
  out = []
  for part in parts:
    for sep in (b'\r\n\r\n', b'\n\n'):
      head, found, data = part.partition(sep)
      if found:
        break
    for end in (b'\r\n', b'\n'):
      if data.endswith(end):
        data = data[:-len(end)]
        break
    out.append(data)
  return json.loads(out[0] or b'{}'), out[1]
