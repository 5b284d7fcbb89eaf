"""Run as a script: the gevent web worker's situation, outside gunicorn.

gevent's monkey patching first (as gunicorn's gevent worker does before it loads the
app), so ``threading.local`` is per greenlet; then Django; then 50 greenlets each
sign a download link, as 50 concurrent requests would. Finally a fork, whose child
signs one more. Prints a JSON line from the child, then one from the parent: how many boto3 clients
were built, and by which process.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402  after patch_all, as in a gevent worker
import os  # noqa: E402 - after patch_all, as above
import sys  # noqa: E402 - after patch_all, as above

import django  # noqa: E402 - after patch_all, as above
import gevent  # noqa: E402 - after patch_all, as above
from botocore.session import Session  # noqa: E402 - after patch_all, as above

built: list[int] = []
_create_client = Session.create_client


def counting_create_client(self: Session, *args: object, **kwargs: object) -> object:
    built.append(os.getpid())
    return _create_client(self, *args, **kwargs)


Session.create_client = counting_create_client  # type: ignore[method-assign]  # counting, on purpose

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from leadlex import storage  # noqa: E402 - after patch_all, as above

greenlets = [gevent.spawn(storage.presigned_get, f"exports/{i}.ndjson.gz", expires=60) for i in range(50)]
gevent.joinall(greenlets, raise_error=True)
urls = [g.value for g in greenlets]
result: dict[str, object] = {
    "backend": storage.backend(),
    "greenlets": len(urls),
    "signed": sum("X-Amz-Signature=" in url for url in urls),
    "built_in_parent": len(built),
}

sys.stdout.flush()
child = os.fork()
if child == 0:
    before = len(built)
    storage.presigned_get("exports/child.ndjson.gz", expires=60)
    storage.presigned_get("exports/child-again.ndjson.gz", expires=60)
    own_client = storage.s3_client()
    child_result = {
        "built": len(built) - before,
        "pids": sorted(set(built[before:])),
        "pid": os.getpid(),
        # Deletes go through the storage's cached Bucket: it must be on the child's client too.
        "bucket_on_own_client": storage.files().bucket.meta.client is own_client,
    }
    print(json.dumps({"child": child_result}))
    sys.stdout.flush()
    os._exit(0)
_, status = os.waitpid(child, 0)
result["child_exit"] = status
print(json.dumps(result))
